"""What a run leaves in the Prefect UI: the summary artifact, the video table, the posters.

The rows, the markdown and the embedded posters are made by :mod:`avatarpipe.publish.summary`;
this module only turns them into artifacts. Nothing secret goes into an artifact (artifacts live
in the Prefect database): blob links are plain URLs without a SAS, and posters are embedded as
small ``data:`` PNGs instead of SAS links.
"""

from __future__ import annotations

import logging

from prefect.artifacts import (
    create_image_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from avatarpipe.batch.run import SynthesisOutcome
from avatarpipe.publish.release import PublishedVideo
from avatarpipe.publish.summary import poster_data_url, run_summary
from avatarpipe.storage.blob import BlobStore

__all__ = ["report_nightly", "report_run"]

log = logging.getLogger(__name__)


def report_run(
    published: list[PublishedVideo], outcome: SynthesisOutcome, store: BlobStore | None
) -> None:
    """Leave the run's summary, video table and posters in the UI.

    The summary lists every video with its duration, size and where it is (folder, plain blob
    URL), the billed avatar seconds and a cost estimate. Posters become image artifacts with an
    embedded PNG. No secret reaches an artifact: blob links carry no SAS.

    Args:
        published: What the run published.
        outcome: The synthesis outcome (jobs with their billing details).
        store: The container the videos were uploaded to, or ``None``.

    Raises:
        OSError: A published video disappeared before it could be measured.
    """
    summary = run_summary(published, outcome, store)
    create_table_artifact(summary.rows, key="avatarpipe-videos", description="published videos")
    create_markdown_artifact(summary.markdown, key="avatarpipe-summary", description="run summary")
    for label, png in summary.posters:
        try:
            create_image_artifact(
                poster_data_url(png), key="avatarpipe-poster", description=f"poster of {label}"
            )
        except OSError as exc:
            log.warning("poster %s not embedded: %s", png.name, exc)


def report_nightly(summary: str) -> None:
    """Leave the nightly sweep's summary (markdown, see ``publish.summary``) in the UI."""
    create_markdown_artifact(summary, key="avatarpipe-nightly", description="nightly sweep summary")
