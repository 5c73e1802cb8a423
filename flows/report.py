"""What a run leaves in the Prefect UI: the summary artifact, the video table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefect.artifacts import create_markdown_artifact, create_table_artifact

if TYPE_CHECKING:
    from flows.script_to_video import PublishedVideo
    from flows.synthesize import SynthesisOutcome

__all__ = ["PRICE_PER_AVATAR_MINUTE_USD", "report_run"]

# Rough list price of batch avatar synthesis, for the summary's estimate only.
PRICE_PER_AVATAR_MINUTE_USD = 0.60


def report_run(published: list[PublishedVideo], outcome: SynthesisOutcome) -> None:
    """Leave the run's summary and video table in the UI (no secrets: blob names, not links)."""
    seconds = sum(j.billing_seconds or 0 for j in outcome.jobs)
    rows = []
    for item in published:
        for video in item.videos:
            size = Path(video).stat().st_size
            rows.append(
                {
                    "script": item.slug,
                    "video": Path(video).name,
                    "duration_s": round(item.duration_s, 2),
                    "size_mb": round(size / 1e6, 2),
                    "folder": item.folder,
                }
            )
    create_table_artifact(rows, key="avatarpipe-videos", description="published videos")
    lines = [
        "# avatarpipe run summary",
        "",
        f"- scripts published: **{len(published)}**",
        f"- videos: **{len(rows)}**",
        f"- avatar seconds billed: **{seconds}** "
        f"(estimate ${seconds / 60 * PRICE_PER_AVATAR_MINUTE_USD:.2f})",
        f"- service requests: {outcome.service_requests}",
        "",
        "| script | video | duration (s) | size (MB) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['script']} | {r['video']} | {r['duration_s']} | {r['size_mb']} |" for r in rows
    ]
    for item in published:
        lines += [f"- blob `{name}`" for name in item.blob_names]
    create_markdown_artifact("\n".join(lines), key="avatarpipe-summary", description="run summary")
