"""Publishing a run folder to Blob Storage: ``<slug>/<run-id>/<file>`` in the container.

Read links are minted on demand, never stored: a SAS must not reach a manifest or the Prefect
database. What is kept are the blob names, and plain blob URLs (no SAS) for the summary.
"""

from __future__ import annotations

from pathlib import Path

from avatarpipe.batch.run import SynthesisOutcome
from avatarpipe.storage.blob import BlobStore

__all__ = ["blob_urls", "ensure_container", "publish_blobs"]

_MAX_METADATA = 1000


def ensure_container(store: BlobStore | None) -> BlobStore | None:
    """The container to publish to, created when missing (``None``: publish locally only).

    Raises:
        StorageError: The container could not be created.
    """
    if store is not None:
        store.ensure_container()
    return store


def publish_blobs(
    store: BlobStore, slug: str, run_id: str, files: list[Path], outcome: SynthesisOutcome
) -> list[str]:
    """Upload a published folder and return the blob names.

    Every blob carries the script, the run id and the ids of the jobs that rendered it.

    Raises:
        StorageError: An upload failed.
    """
    mine = {j.job_id for j in outcome.jobs if any(k.startswith(slug + "/") for k in j.scene_keys)}
    metadata = {"script": slug, "run_id": run_id, "job_ids": ",".join(sorted(mine))[:_MAX_METADATA]}
    names = []
    for path in files:
        name = f"{slug}/{run_id}/{path.name}"
        store.upload(path, name, metadata=metadata)
        names.append(name)
    return names


def blob_urls(store: BlobStore | None, names: list[str]) -> dict[str, str]:
    """File name -> plain blob URL (no SAS) of what was published."""
    if store is None:
        return {}
    return {name.rsplit("/", 1)[-1]: store.blob_url(name) for name in names}
