"""Releasing one script's staged run: manifest written, folder renamed into place, blobs uploaded.

Until :func:`release` commits the run folder nothing carries its final name; once it returns,
the folder is complete and (with a container configured) uploaded under ``<slug>/<run-id>/``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from avatarpipe.batch.run import SynthesisOutcome
from avatarpipe.media.postprocess import OutputResult
from avatarpipe.publish.blob import publish_blobs
from avatarpipe.publish.folder import RunDirectory
from avatarpipe.publish.manifest import build_manifest, joined_entry, output_entries
from avatarpipe.publish.variants import joined_path
from avatarpipe.scripts.jobs import RenderedScene
from avatarpipe.scripts.model import Script
from avatarpipe.storage.blob import BlobStore

__all__ = ["VIDEO_SUFFIXES", "PublishedVideo", "release"]

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv")


class PublishedVideo(BaseModel):
    """One script's published run."""

    slug: str
    folder: str
    videos: list[str]
    manifest: str
    duration_s: float
    blob_names: list[str] = Field(default_factory=list)


def release(
    script: Script,
    run_dir: RunDirectory,
    scenes: list[RenderedScene],
    outcome: SynthesisOutcome,
    results: list[OutputResult] | None,
    *,
    store: BlobStore | None,
    flow_run_id: str | None,
    backend: str,
    endpoint: str,
    timings: dict[str, float],
    estimate: dict[str, float] | None = None,
) -> PublishedVideo:
    """Write the manifest, commit the run folder and upload it to the container.

    Args:
        script: The script.
        run_dir: Its staged run folder, holding every output.
        scenes: Its scenes, in order.
        outcome: The synthesis outcome holding every scene's video and job.
        results: The post-processed outputs, or ``None`` when the scenes were only joined.
        store: The container to upload to, or ``None``.
        flow_run_id: The Prefect flow run, when there is one.
        backend: ``azure`` or ``emulator``.
        endpoint: The Speech endpoint (a plain URL).
        timings: Seconds per stage.
        estimate: The run's estimate for this script, recorded beside the billing.

    Returns:
        The published folder.

    Raises:
        StorageError: The manifest, the rename or an upload failed.
        OSError: The joined video is missing.
    """
    if results is None:
        outputs = [joined_entry(joined_path(script, run_dir))]
    else:
        outputs = output_entries(results)
    manifest = build_manifest(
        script,
        scenes,
        outcome,
        outputs,
        run_id=run_dir.run_id,
        flow_run_id=flow_run_id,
        backend=backend,
        endpoint=endpoint,
        timings=timings,
        estimate=estimate,
    )
    final = run_dir.commit(manifest)
    files = sorted(p for p in final.iterdir() if p.is_file())
    blob_names = []
    if store is not None:
        blob_names = publish_blobs(store, script.slug, run_dir.run_id, files, outcome)
    duration = max((float(o.get("duration_s", 0.0)) for o in outputs), default=0.0)
    if not duration:
        videos = {v.key: v for v in outcome.videos}
        duration = sum(videos[sc.video.key].duration_ms for sc in scenes) / 1000
    return PublishedVideo(
        slug=script.slug,
        folder=str(final),
        videos=[str(p) for p in files if p.suffix in VIDEO_SUFFIXES],
        manifest=str(final / "manifest.json"),
        duration_s=duration,
        blob_names=blob_names,
    )
