"""Background threads that move jobs through NotStarted -> Running -> Succeeded|Failed.

One scheduler thread starts waiting jobs (after the modelled queue delay, at most
``max_running`` at once), finishes rendered jobs once their modelled render time is over, applies
CNV/avatar state transitions and deletes jobs past their TTL. A small pool of render threads calls
the :class:`~avatarpipe.emulator.rendering.Renderer` for each input, writes ``summary.json`` and,
with ``destinationContainerUrl``, uploads everything through the Blob API. After a restart, jobs
that were ``Running`` are rendered again: stopping the emulator kills renders in progress (their
ffmpeg children) without failing their jobs, which stay ``Running`` until the next start renders
them again, as the service does after an outage.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import httpx

from avatarpipe.emulator.rendering import Renderer, RenderSpec
from avatarpipe.emulator.resource import EmulatedResource
from avatarpipe.emulator.store import Job
from avatarpipe.errors import AvatarpipeError, redact
from avatarpipe.processes import terminate_children

__all__ = ["JobWorker", "render_spec"]

log = logging.getLogger(__name__)

_TICK_S = 0.1


def _color(value: str | None) -> str:
    if not value:
        return "#FFFFFFFF"
    if value.lower() == "transparent":
        return "#00000000"
    if len(value) == 7:
        return value + "FF"
    return value.upper()


def render_spec(request: dict[str, Any], content: str, background: Path | None) -> RenderSpec:
    """Build the :class:`RenderSpec` of one input of a validated job request.

    Args:
        request: The job's create request (camelCase).
        content: The input's text or SSML.
        background: A local copy of ``backgroundImage``, when it has one.

    Returns:
        The spec.
    """
    avatar = request["avatarConfig"]
    synth = request.get("synthesisConfig") or {}
    props = request.get("properties") or {}
    crop = avatar.get("videoCrop")
    crop_box = None
    if crop:
        crop_box = (
            int(crop["topLeft"]["x"]),
            int(crop["topLeft"]["y"]),
            int(crop["bottomRight"]["x"]),
            int(crop["bottomRight"]["y"]),
        )
    kind: Literal["PlainText", "SSML"] = (
        "SSML" if str(request.get("inputKind", "")).lower() == "ssml" else "PlainText"
    )
    return RenderSpec(
        content=content,
        input_kind=kind,
        voice=synth.get("voice"),
        rate=synth.get("rate"),
        pitch=synth.get("pitch"),
        volume=synth.get("volume"),
        character=str(avatar["talkingAvatarCharacter"]),
        style=avatar.get("talkingAvatarStyle"),
        customized=bool(avatar.get("customized", False)),
        photo=bool(avatar.get("photoAvatarBaseModel")),
        video_format=str(avatar.get("videoFormat") or "mp4").lower(),  # type: ignore[arg-type]
        video_codec=str(avatar.get("videoCodec") or "hevc").lower(),  # type: ignore[arg-type]
        bitrate_kbps=int(avatar.get("bitrateKbps") or 2000),
        subtitle_type=str(avatar.get("subtitleType") or "soft_embedded").lower(),  # type: ignore[arg-type]
        background_color=_color(avatar.get("backgroundColor")),
        background_image=background,
        video_crop=crop_box,
        word_boundary=bool(props.get("wordBoundaryEnabled", False)),
        sentence_boundary=bool(props.get("sentenceBoundaryEnabled", False)),
    )


class JobWorker:
    """The scheduler thread plus the render pool of one emulated resource."""

    def __init__(self, resource: EmulatedResource, renderer: Renderer) -> None:
        """Create (not start) the worker.

        Args:
            resource: The emulated resource.
            renderer: What renders each input.
        """
        self.resource = resource
        self.renderer = renderer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=resource.config.render_workers, thread_name_prefix="emulator-render"
        )
        self._rendering: set[str] = set()
        self._render_threads: set[int] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the scheduler; re-render jobs that were ``Running`` when the emulator stopped."""
        for job in self.resource.store.jobs_with_status("Running"):
            if "final_status" not in job.result:
                self._submit(job)
        self._thread = threading.Thread(target=self._loop, name="emulator-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the scheduler and the renders in progress (their jobs stay ``Running``)."""
        self._stop.set()
        self.resource.wakeup.set()
        with self._lock:
            threads = set(self._render_threads)
        terminate_children(threads)
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------ scheduling

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # pragma: no cover - keep the scheduler alive
                log.exception("emulator scheduler tick failed")
            self.resource.wakeup.wait(_TICK_S)
            self.resource.wakeup.clear()

    def tick(self) -> None:
        """Do one round of scheduling work."""
        res = self.resource
        res.advance_phases()
        now = res.now()
        cfg = res.config
        # Finish rendered jobs whose modelled render time is over.
        # The modelled time is computed now (not when rendering ended), so that a change of
        # time_scale at run time or across a restart applies to jobs already rendered.
        for job in res.store.jobs_with_status("Running"):
            if "final_status" not in job.result:
                continue
            modelled = cfg.scaled(cfg.render_s_per_video_s * float(job.result["video_s"]))
            done_at = max(float(job.result["rendered_at"]), (job.started or now) + modelled)
            if done_at <= now:
                job.status = str(job.result["final_status"])
                job.last_action = done_at
                job.finish_at = done_at
                res.store.update_job(job, expect_status="Running")
        # TTL: final jobs past lastActionDateTime + timeToLiveInHours are deleted with results.
        for job in res.store.jobs_with_status("Succeeded", "Failed"):
            ttl_h = (job.request.get("properties") or {}).get("timeToLiveInHours", 744)
            if job.last_action + float(ttl_h) * 3600.0 <= now:
                deleted = res.store.delete_job(job.id)
                if deleted is not None and deleted.internal_id == job.internal_id:
                    res.jobs.remove_results(job)
                    res.store.bump("jobs_expired")
        # Start waiting jobs, oldest first, up to the concurrency cap.
        running = res.store.count_jobs("Running")
        for job in res.store.jobs_with_status("NotStarted"):
            if running >= cfg.max_running:
                break
            if job.created + cfg.scaled(cfg.queue_delay_s) > now:
                continue
            job.status = "Running"
            job.started = now
            job.last_action = now
            job.result = {"fail": res.faults.job_fails()}
            if res.store.update_job(job, expect_status="NotStarted"):
                running += 1
                self._submit(job)

    def _submit(self, job: Job) -> None:
        with self._lock:
            if job.internal_id in self._rendering or self._stop.is_set():
                return
            self._rendering.add(job.internal_id)
        try:
            self._pool.submit(self._render_job, job)
        except RuntimeError:  # pool shut down
            with self._lock:
                self._rendering.discard(job.internal_id)

    # ------------------------------------------------------------ rendering

    def _render_job(self, job: Job) -> None:
        with self._lock:
            self._render_threads.add(threading.get_ident())
        try:
            self._render_job_inner(job)
        except Exception as exc:
            if self._stop.is_set():
                log.info("emulator: job %s stopped mid-render; rendered again on start", job.id)
                return
            if not self.resource.jobs.exists(job):
                # DELETE removed its folder while it rendered: nothing went wrong.
                self._dropped(job)
                return
            log.exception("emulator: rendering job %s failed", job.id)
            self._finish(job, [], [], {"code": "InternalServerError", "message": str(exc)})
        finally:
            with self._lock:
                self._rendering.discard(job.internal_id)
            self.resource.wakeup.set()

    def _render_job_inner(self, job: Job) -> None:
        res = self.resource
        out_dir = res.jobs.job_dir(job)
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        if job.result.get("fail"):
            res.store.bump("fault.job_fail")
            self._finish(
                job,
                [],
                [],
                {
                    "code": "InternalServerError",
                    "message": "The synthesis failed because of an internal error.",
                },
            )
            return
        request = job.request
        inputs: list[dict[str, Any]] = []
        files: list[str] = []
        first_error: dict[str, str] | None = None
        with tempfile.TemporaryDirectory(prefix="emulator-bg-") as tmp:
            background = self._background(request, Path(tmp))
            for idx, item in enumerate(request.get("inputs") or [], start=1):
                if self._stop.is_set():
                    return  # resumed after restart
                if not res.jobs.exists(job):
                    self._dropped(job)
                    return
                stem = f"{idx:04d}"
                entry: dict[str, Any] = {"texts": [item["content"]], "stem": stem}
                try:
                    if isinstance(background, str):
                        raise _InputError("InvalidBackgroundImage", background)
                    spec = render_spec(request, item["content"], background)
                    done = self.renderer.render(spec, out_dir, stem)
                    entry |= {
                        "status": "Succeeded",
                        "file": done.video.name,
                        "size": done.size_bytes,
                        "duration_ms": done.duration_ms,
                        "characters": done.characters,
                        "extra": [p.name for p in done.extra_files],
                    }
                    files.append(done.video.name)
                    files.extend(p.name for p in done.extra_files)
                except (AvatarpipeError, _InputError) as exc:
                    code = exc.code if isinstance(exc, _InputError) else "BadRequest"
                    message = exc.message if isinstance(exc, _InputError) else exc.message
                    entry |= {"status": "Failed", "error": {"code": code, "message": message}}
                    first_error = first_error or entry["error"]
                inputs.append(entry)
        if self._stop.is_set():
            return  # stopped mid-render (its ffmpeg killed): not a failure, rendered on start
        ok = [i for i in inputs if i["status"] == "Succeeded"]
        summary = _summary(job, inputs, res.resource_hex)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        error = None if ok else first_error
        if ok and (request.get("properties") or {}).get("destinationContainerUrl"):
            try:
                self._upload(job, out_dir, [*files, "summary.json"])
            except Exception as exc:
                error = {
                    "code": "InvalidDestination",
                    "message": redact(
                        "Writing the results to destinationContainerUrl failed: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    ),
                }
        self._finish(job, inputs, files, error)

    def _finish(
        self,
        job: Job,
        inputs: list[dict[str, Any]],
        files: list[str],
        error: dict[str, str] | None,
    ) -> None:
        res = self.resource
        video_s = sum(int(i.get("duration_ms", 0)) for i in inputs) / 1000.0
        job.result = {
            "inputs": inputs,
            "files": files,
            "final_status": "Failed" if error else "Succeeded",
            "video_s": video_s,
            "rendered_at": res.now(),
        }
        if error:
            job.result["error"] = error
        if not res.store.update_job(job, expect_status="Running"):
            self._dropped(job)
        res.wakeup.set()

    def _dropped(self, job: Job) -> None:
        """A job deleted while it rendered: remove what the render left behind."""
        log.info("emulator: job %s was deleted while rendering; its results are dropped", job.id)
        self.resource.jobs.remove_results(job)

    @staticmethod
    def _background(request: dict[str, Any], tmp: Path) -> Path | str | None:
        url = request["avatarConfig"].get("backgroundImage")
        if not url:
            return None
        try:
            resp = httpx.get(url, timeout=10.0, follow_redirects=True)
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            return redact(f"The background image could not be downloaded: {exc}")
        path = tmp / "background"
        path.write_bytes(resp.content)
        return path

    def _upload(self, job: Job, out_dir: Path, names: list[str]) -> None:
        from azure.storage.blob import ContainerClient

        url = str(job.request["properties"]["destinationContainerUrl"])
        prefix = self.resource.jobs.destination_prefix(job)
        with ContainerClient.from_container_url(url) as container:
            for name in names:
                with (out_dir / name).open("rb") as data:
                    container.upload_blob(f"{prefix}{name}", data, overwrite=True)


def _summary(job: Job, inputs: list[dict[str, Any]], resource_hex: str) -> dict[str, Any]:
    """``summary.json`` of a rendered job."""
    avatar = job.request["avatarConfig"]
    return {
        "jobID": job.internal_id,
        "status": "Succeeded" if any(i["status"] == "Succeeded" for i in inputs) else "Failed",
        "results": [
            {
                "texts": i["texts"],
                "status": i["status"],
                **(
                    {"videoFileName": f"{resource_hex}/{job.id}/{i['file']}"}
                    if i["status"] == "Succeeded"
                    else {}
                ),
                "TalkingAvatarCharacter": avatar["talkingAvatarCharacter"],
                "TalkingAvatarStyle": avatar.get("talkingAvatarStyle") or "",
            }
            for i in inputs
        ],
    }


class _InputError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
