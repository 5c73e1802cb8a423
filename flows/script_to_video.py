"""The main flow: a script (or a CSV of rows filling a template script) in, finished videos out.

validate -> ensure avatar and voice -> SSML per scene -> synthesize (all scenes of all rows in
one idempotent batch) -> post-process (one ffmpeg pass per output, outputs in parallel) ->
publish to ``outputs/<slug>/<run-id>/`` with ``manifest.json`` (and to Blob Storage when
configured) -> report -> optional teardown.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from avatarpipe import progress
from avatarpipe.media.postprocess import OutputResult, PostJob, concat_copy, process_outputs
from avatarpipe.media.presets import Preset, load_preset
from avatarpipe.media.tracks import scene_cues
from avatarpipe.scripts.jobs import SceneInput, custom_voices, scene_inputs
from avatarpipe.scripts.loader import load_bulk, load_script
from avatarpipe.scripts.model import Script
from avatarpipe.scripts.ssml import script_hash
from avatarpipe.storage.blob import BlobStore, store_from_settings
from avatarpipe.storage.local import RunDirectory, new_run_id
from flows.preflight import TeardownPolicy, ensure_avatar_deployment, ensure_custom_voice, teardown
from flows.report import report_run
from flows.speech import SpeechTarget, settings
from flows.synthesize import InputItem, SynthesisOutcome, SynthesisRequest, synthesize

__all__ = ["PublishedVideo", "RunOptions", "script_to_video"]

log = logging.getLogger(__name__)


class RunOptions(BaseModel):
    """How a run behaves (flow parameter; no secrets).

    Attributes:
        out_dir: The output root.
        poll_interval_s: Seconds between polling rounds.
        timeout_s: Overall deadline for the batch jobs.
        postprocess: Run the post-processing preset (else scenes are only joined).
        teardown: Stop paying for idle hosting afterwards (see the ``teardown`` flow).
        delete_jobs: Delete finished jobs on the service after a verified download.
        pack: Pack scenes into multi-input jobs when a blob container is configured.
        run_id: Use this run id instead of a new one.
    """

    out_dir: str = "outputs"
    poll_interval_s: float = Field(default=20.0, gt=0)
    timeout_s: float = Field(default=4 * 3600.0, gt=0)
    postprocess: bool = True
    teardown: TeardownPolicy = "keep"
    delete_jobs: bool = False
    pack: bool = True
    run_id: str | None = None


class PublishedVideo(BaseModel):
    """One script's published run."""

    slug: str
    folder: str
    videos: list[str]
    manifest: str
    duration_s: float
    blob_names: list[str] = Field(default_factory=list)


def _run_name() -> str:
    params = flow_run.parameters or {}
    name = Path(str(params.get("script_path", "script"))).stem
    return f"video-{name}"


@task(name="validate", task_run_name="validate-{script_path}", cache_policy=NO_CACHE)
def load_scripts(script_path: str, csv_path: str | None) -> list[Script]:
    """Load and validate the script (or the CSV rows filling it)."""
    if csv_path:
        return load_bulk(csv_path, script_path)
    return [load_script(script_path)]


@task(name="render-ssml", task_run_name="ssml-{script.slug}", cache_policy=NO_CACHE)
def render_ssml(script: Script) -> list[SceneInput]:
    """Render every scene of one script to well-formed SSML."""
    return scene_inputs(script)


def _preset_for(script: Script, variant: str) -> Preset:
    return load_preset(script.post.preset, dict(script.post.overrides)).for_aspect(variant)  # type: ignore[arg-type]


@task(name="post-process", task_run_name="post-process-{label}", cache_policy=NO_CACHE)
def post_process(jobs: list[PostJob], label: str) -> list[OutputResult]:
    """Render every output (one ffmpeg pass each, several at once)."""
    results = process_outputs(jobs)
    for result in results:
        progress.report("postprocessed", result.path.name, size=result.size_bytes)
    return results


@task(name="join-scenes", task_run_name="join-{label}", cache_policy=NO_CACHE)
def join_scenes(scenes: list[Path], out: Path, label: str) -> Path:
    """Join scenes without re-encoding (no post-processing preset)."""
    concat_copy(scenes, out)
    progress.report("postprocessed", out.name, str(out))
    return out


def _manifest(
    script: Script,
    run_id: str,
    target: SpeechTarget,
    scenes: list[SceneInput],
    outcome: SynthesisOutcome,
    outputs: list[dict[str, Any]],
    timings: dict[str, float],
) -> dict[str, Any]:
    by_key = {v.key: v for v in outcome.videos}
    jobs = {k: j for j in outcome.jobs for k in j.scene_keys}
    scene_rows = []
    for scene in scenes:
        video = by_key[scene.key]
        job = jobs.get(scene.key)
        scene_rows.append(
            {
                "key": scene.key,
                "index": scene.index,
                "ssml_sha256": hashlib.sha256(scene.ssml.encode()).hexdigest(),
                "job_id": video.job_id,
                "job_status": job.status if job else None,
                "billing_seconds": job.billing_seconds if job else None,
                "video": {
                    "cache_path": video.path,
                    "size_bytes": video.size_bytes,
                    "sha256": video.sha256,
                    "duration_ms": video.duration_ms,
                },
            }
        )
    return {
        "schema": "avatarpipe.manifest/1",
        "title": script.title,
        "slug": script.slug,
        "run_id": run_id,
        "flow_run_id": str(flow_run.id) if flow_run.id else None,
        "script_sha256": script_hash(script),
        "backend": target.backend,
        "endpoint": target.endpoint,
        "avatar": script.avatar.model_dump(mode="json"),
        "voice": {
            "name": script.voice.name,
            "deployment_id": str(script.voice.deployment_id or ""),
        },
        "scenes": scene_rows,
        "outputs": outputs,
        "billing": {
            "avatar_seconds": sum(r["billing_seconds"] or 0 for r in scene_rows),
        },
        "timings_s": timings,
    }


@flow(name="script-to-video", flow_run_name=_run_name, log_prints=True)
def script_to_video(
    script_path: str,
    target: SpeechTarget,
    options: RunOptions | None = None,
    csv_path: str | None = None,
) -> list[PublishedVideo]:
    """Turn a script (or every row of a CSV filling it) into finished, published videos.

    Args:
        script_path: The script YAML (the template script when ``csv_path`` is given).
        target: Where the Speech service is.
        options: How the run behaves.
        csv_path: A CSV whose rows fill ``{{ column }}`` placeholders: one video per row.

    Returns:
        One published folder per script (per row).

    Raises:
        ScriptError: The script or CSV is invalid (nothing is submitted).
        DeploymentError: The custom avatar is not usable.
        CustomVoiceError: The custom voice is not usable in this resource.
        SynthesisFailedError: Jobs failed for a reason a resubmission cannot fix.
        MediaError: Post-processing failed (nothing is published for that script).
    """
    opts = options or RunOptions()
    logger = get_run_logger()
    started = time.monotonic()
    timings: dict[str, float] = {}
    scripts = load_scripts(script_path, csv_path)
    timings["validate"] = time.monotonic() - started

    t0 = time.monotonic()
    for character, customized in sorted(
        {(s.avatar.character, s.avatar.customized) for s in scripts}
    ):
        if customized:
            first = next(s for s in scripts if s.avatar.character == character)
            ensure_avatar_deployment(
                character,
                target,
                customized=True,
                probe_voice=first.voice.name,
                probe_custom_voices=custom_voices(first),
            )
    voices = {(s.voice.name, str(s.voice.deployment_id)) for s in scripts if s.voice.deployment_id}
    for voice_name, deployment_id in sorted(voices):
        ensure_custom_voice(voice_name, deployment_id, target)
    timings["preflight"] = time.monotonic() - t0

    t0 = time.monotonic()
    per_script = {s.slug: render_ssml(s) for s in scripts}
    groups: dict[str, list[tuple[Script, SceneInput]]] = {}
    for script in scripts:
        for scene in per_script[script.slug]:
            group = json.dumps([scene.avatar.wire(), custom_voices(script)], sort_keys=True)
            groups.setdefault(group, []).append((script, scene))
    outcomes: list[SynthesisOutcome] = []
    cache_dir = str(Path(opts.out_dir) / ".cache" / "jobs")
    label = scripts[0].slug if len(scripts) == 1 else f"{scripts[0].slug}-bulk"
    for members in groups.values():
        script0, scene0 = members[0]
        outcomes.append(
            synthesize(
                SynthesisRequest(
                    label=label,
                    inputs=[InputItem(key=sc.key, content=sc.ssml) for _, sc in members],
                    avatar=scene0.avatar,
                    custom_voices=custom_voices(script0),
                    pack=opts.pack,
                    cache_dir=cache_dir,
                    poll_interval_s=opts.poll_interval_s,
                    timeout_s=opts.timeout_s,
                    delete_after_download=opts.delete_jobs,
                ),
                target,
            )
        )
    timings["synthesize"] = time.monotonic() - t0
    videos = {v.key: v for o in outcomes for v in o.videos}
    merged = SynthesisOutcome(
        videos=list(videos.values()),
        jobs=[j for o in outcomes for j in o.jobs],
        service_requests=sum(o.service_requests for o in outcomes),
    )

    t0 = time.monotonic()
    run_id = opts.run_id or new_run_id(str(flow_run.id or "local"))
    root = Path(opts.out_dir)
    run_dirs = {s.slug: RunDirectory(root, s.slug, run_id) for s in scripts}
    post_jobs: list[PostJob] = []
    owners: list[str] = []
    try:
        for script in scripts:
            scene_files = [Path(videos[sc.key].path) for sc in per_script[script.slug]]
            run_dir = run_dirs[script.slug]
            if not opts.postprocess:
                join_scenes(scene_files, run_dir.path(f"{script.slug}.mp4"), script.slug)
                continue
            cues = [scene_cues(p) for p in scene_files]
            for variant in script.post.variants:
                preset = _preset_for(script, variant)
                suffix = "" if variant == "16:9" else "-" + variant.replace(":", "x")
                post_jobs.append(
                    PostJob(
                        scenes=scene_files,
                        preset=preset,
                        out_path=run_dir.path(f"{script.slug}{suffix}{preset.suffix}"),
                        intro=script.post.intro,
                        outro=script.post.outro,
                        music=script.post.music,
                        logo=script.post.logo,
                        scene_cues=cues,
                    )
                )
                owners.append(script.slug)
        results = post_process(post_jobs, label) if post_jobs else []
    except BaseException:
        for run_dir in run_dirs.values():
            run_dir.abandon()
        raise
    timings["postprocess"] = time.monotonic() - t0

    published: list[PublishedVideo] = []
    store = _store()
    for script in scripts:
        run_dir = run_dirs[script.slug]
        mine = [r for r, owner in zip(results, owners, strict=True) if owner == script.slug]
        outputs = [r.to_manifest() for r in mine]
        if not opts.postprocess:
            joined = run_dir.path(f"{script.slug}.mp4")
            outputs = [{"path": joined.name, "size_bytes": joined.stat().st_size}]
        for out in outputs:
            for key in ("path", "thumbnail", "contact_sheet"):
                if isinstance(out.get(key), str):
                    out[key] = Path(out[key]).name
            if isinstance(out.get("subtitles"), list):
                out["subtitles"] = [Path(p).name for p in out["subtitles"]]
        timings["total"] = time.monotonic() - started
        manifest = _manifest(
            script, run_id, target, per_script[script.slug], merged, outputs, timings
        )
        final = run_dir.commit(manifest)
        files = sorted(p for p in final.iterdir() if p.is_file())
        blob_names: list[str] = []
        if store is not None:
            blob_names = _publish_blobs(store, script, run_id, files, merged)
        duration = max((float(o.get("duration_s", 0.0)) for o in outputs), default=0.0)
        if not duration:
            duration = sum(videos[sc.key].duration_ms for sc in per_script[script.slug]) / 1000
        video_files = [str(p) for p in files if p.suffix in (".mp4", ".webm", ".mov", ".mkv")]
        published.append(
            PublishedVideo(
                slug=script.slug,
                folder=str(final),
                videos=video_files,
                manifest=str(final / "manifest.json"),
                duration_s=duration,
                blob_names=blob_names,
            )
        )
        progress.report("published", script.slug, str(final))
        emit_event(
            "avatarpipe.video.published",
            resource={"prefect.resource.id": f"avatarpipe.run.{script.slug}.{run_id}"},
            payload={"folder": str(final), "videos": [Path(v).name for v in video_files]},
        )
        logger.info("published %s", final)
    report_run(published, merged)
    if opts.teardown != "keep":
        deployment_ids = sorted({d for _, d in voices})
        characters = sorted({s.avatar.character for s in scripts if s.avatar.customized})
        teardown(
            opts.teardown,
            target,
            character=characters[0] if characters else None,
            deployment_ids=deployment_ids,
        )
    return published


def _store() -> BlobStore | None:
    store = store_from_settings(settings())
    if store is not None:
        store.ensure_container()
    return store


def _publish_blobs(
    store: BlobStore, script: Script, run_id: str, files: list[Path], outcome: SynthesisOutcome
) -> list[str]:
    """Upload a published folder and return the blob names.

    Read links are minted on demand, never stored: a SAS must not reach the Prefect database.
    """
    mine = {
        j.job_id for j in outcome.jobs if any(k.startswith(script.slug + "/") for k in j.scene_keys)
    }
    metadata = {"script": script.slug, "run_id": run_id, "job_ids": ",".join(sorted(mine))[:1000]}
    names = []
    for path in files:
        name = f"{script.slug}/{run_id}/{path.name}"
        store.upload(path, name, metadata=metadata)
        names.append(name)
    return names
