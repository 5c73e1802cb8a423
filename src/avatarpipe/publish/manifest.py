"""``manifest.json``: what one published run folder holds and how it was made.

The manifest names every scene (its SSML digest, the job that rendered it, the billed seconds,
the verified scene video) and every output (file names relative to the folder), so a folder
can be audited or re-published without the Prefect database. Each output says which of its
streams were copied from the service's video untouched (``copied_streams``, and
``video.copied`` / ``video.reencoded_because``) and how many outputs its ffmpeg pass wrote.
It holds no secret: the endpoint is a plain URL, and
:func:`~avatarpipe.publish.folder.write_json_atomic` redacts on write.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from avatarpipe.batch.run import SynthesisOutcome
from avatarpipe.media.postprocess import OutputResult
from avatarpipe.scripts.jobs import RenderedScene
from avatarpipe.scripts.model import Script
from avatarpipe.scripts.ssml import script_hash

__all__ = ["SCHEMA", "build_manifest", "joined_entry", "output_entries"]

SCHEMA = "avatarpipe.manifest/1"
_FILE_KEYS = ("path", "thumbnail", "contact_sheet")


def output_entries(results: list[OutputResult]) -> list[dict[str, Any]]:
    """The manifest's ``outputs`` for post-processed videos (file names, not paths).

    Each entry keeps :meth:`~avatarpipe.media.postprocess.OutputResult.to_manifest`'s record of
    the copied streams and of why the picture was re-encoded.
    """
    outputs = [r.to_manifest() for r in results]
    for out in outputs:
        for key in _FILE_KEYS:
            if isinstance(out.get(key), str):
                out[key] = Path(out[key]).name
        if isinstance(out.get("subtitles"), list):
            out["subtitles"] = [Path(p).name for p in out["subtitles"]]
    return outputs


def joined_entry(video: Path) -> dict[str, Any]:
    """The manifest's ``outputs`` entry for scenes joined without post-processing.

    Raises:
        OSError: The joined video is missing.
    """
    return {"path": video.name, "size_bytes": video.stat().st_size}


def build_manifest(
    script: Script,
    scenes: list[RenderedScene],
    outcome: SynthesisOutcome,
    outputs: list[dict[str, Any]],
    *,
    run_id: str,
    flow_run_id: str | None,
    backend: str,
    endpoint: str,
    timings: dict[str, float],
    estimate: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The manifest of one script's run.

    Args:
        script: The script.
        scenes: Its scenes, in order.
        outcome: The synthesis outcome holding every scene's video and job.
        outputs: The published outputs (see :func:`output_entries`, :func:`joined_entry`).
        run_id: The run id (the folder's name).
        flow_run_id: The Prefect flow run, when there is one.
        backend: ``azure`` or ``emulator``.
        endpoint: The Speech endpoint (a plain URL).
        timings: Seconds per stage.
        estimate: The run's estimate for this script (``estimated_seconds``,
            ``estimated_cost_usd``, ``usd_per_minute``: see
            :meth:`avatarpipe.batch.estimate.RunEstimate.billing_for`), shown beside the billing.

    Returns:
        The JSON-safe manifest.

    Raises:
        KeyError: A scene has no video in ``outcome``.
    """
    by_key = {v.key: v for v in outcome.videos}
    jobs = {k: j for j in outcome.jobs for k in j.scene_keys}
    scene_rows = []
    for scene in scenes:
        video = by_key[scene.video.key]
        job = jobs.get(scene.video.key)
        scene_rows.append(
            {
                "key": scene.video.key,
                "index": scene.index,
                "ssml_sha256": hashlib.sha256(scene.video.content.encode()).hexdigest(),
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
    billed = sum(j.billing_seconds or 0 for j in (jobs.get(s.video.key) for s in scenes) if j)
    billing: dict[str, Any] = {"avatar_seconds": billed}
    if estimate is not None:
        billing["cost_usd"] = round(billed / 60 * estimate["usd_per_minute"], 4)
        billing.update(estimate)
    return {
        "schema": SCHEMA,
        "title": script.title,
        "slug": script.slug,
        "run_id": run_id,
        "flow_run_id": flow_run_id,
        "script_sha256": script_hash(script),
        "backend": backend,
        "endpoint": endpoint,
        "avatar": script.avatar.model_dump(mode="json"),
        "voice": {
            "name": script.voice.name,
            "deployment_id": str(script.voice.deployment_id or ""),
        },
        "scenes": scene_rows,
        "outputs": outputs,
        "billing": billing,
        "timings_s": timings,
    }
