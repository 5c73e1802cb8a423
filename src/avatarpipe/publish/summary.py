"""What a run reports: one row per published video, the run summary, posters, the nightly sweep.

Nothing secret goes into a summary (it becomes a Prefect artifact, stored in the Prefect
database): blob links are plain URLs without a SAS, and posters are embedded as small ``data:``
PNGs instead of SAS links.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from avatarpipe.batch.run import SynthesisOutcome
from avatarpipe.publish.blob import blob_urls
from avatarpipe.publish.release import PublishedVideo
from avatarpipe.storage.blob import BlobStore

__all__ = [
    "MAX_POSTERS",
    "POSTER_WIDTH",
    "PRICE_PER_AVATAR_MINUTE_USD",
    "RunSummary",
    "nightly_markdown",
    "poster_data_url",
    "run_summary",
]

# Rough list price of batch avatar synthesis, for the summary's estimate only.
PRICE_PER_AVATAR_MINUTE_USD = 0.60
POSTER_WIDTH = 320
"""Width of the poster embedded in the image artifact (a few tens of KB as a data URL)."""
MAX_POSTERS = 4


def poster_data_url(png: Path, width: int = POSTER_WIDTH) -> str:
    """A downscaled copy of a poster as a ``data:image/png;base64,...`` URL.

    Args:
        png: The poster image.
        width: The embedded copy's width (height keeps the aspect ratio).

    Returns:
        The data URL (no external link, so nothing secret and nothing that expires).

    Raises:
        OSError: The image cannot be read.
    """
    with Image.open(png) as img:
        rgb = img.convert("RGB")
        if rgb.width > width:
            rgb = rgb.resize(
                (width, max(1, round(rgb.height * width / rgb.width))), Image.Resampling.LANCZOS
            )
        buf = io.BytesIO()
        rgb.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class RunSummary:
    """A run's report.

    Attributes:
        rows: One row per published video (script, video, duration, size, folder, blob URL).
        markdown: The summary: totals, billed seconds, cost estimate and the video table.
        posters: ``(label, poster PNG)`` of the first videos with a poster.
    """

    rows: list[dict[str, Any]]
    markdown: str
    posters: list[tuple[str, Path]] = field(default_factory=list)


def _outputs(item: PublishedVideo) -> dict[str, dict[str, Any]]:
    """The manifest's outputs by file name (empty when the manifest is unreadable)."""
    try:
        data = json.loads(Path(item.manifest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(o.get("path")): o for o in data.get("outputs", []) if isinstance(o, dict)}


def _markdown(rows: list[dict[str, Any]], scripts: int, outcome: SynthesisOutcome) -> str:
    seconds = sum(j.billing_seconds or 0 for j in outcome.jobs)
    cost = seconds / 60 * PRICE_PER_AVATAR_MINUTE_USD
    lines = [
        "# avatarpipe run summary",
        "",
        f"- scripts published: **{scripts}**",
        f"- videos: **{len(rows)}**, "
        f"{sum(r['duration_s'] for r in rows):.1f} s, {sum(r['size_mb'] for r in rows):.2f} MB",
        f"- avatar seconds billed: **{seconds}** (estimate ${cost:.2f} "
        f"at ${PRICE_PER_AVATAR_MINUTE_USD:.2f}/min)",
        f"- batch jobs: {len(outcome.jobs)}; service requests: {outcome.service_requests}",
        "",
        "| script | video | duration (s) | size (MB) | where |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        where = f"[blob]({r['blob_url']})" if r["blob_url"] else f"`{r['folder']}`"
        lines.append(
            f"| {r['script']} | {r['video']} | {r['duration_s']} | {r['size_mb']} | {where} |"
        )
    return "\n".join(lines)


def run_summary(
    published: list[PublishedVideo], outcome: SynthesisOutcome, store: BlobStore | None
) -> RunSummary:
    """The report of a run: every video with its duration, size and where it is.

    Args:
        published: What the run published.
        outcome: The synthesis outcome (jobs with their billing details).
        store: The container the videos were uploaded to (for plain blob URLs), or ``None``.

    Returns:
        The rows, the markdown summary and the posters to embed.

    Raises:
        OSError: A published video disappeared before it could be measured.
    """
    rows: list[dict[str, Any]] = []
    posters: list[tuple[str, Path]] = []
    for item in published:
        outputs = _outputs(item)
        blobs = blob_urls(store, item.blob_names)
        for video in item.videos:
            name = Path(video).name
            size = Path(video).stat().st_size
            out = outputs.get(name, {})
            duration = float(out.get("duration_s") or item.duration_s)
            thumb = out.get("thumbnail")
            if isinstance(thumb, str) and (Path(item.folder) / thumb).is_file():
                posters.append((f"{item.slug}: {name}", Path(item.folder) / thumb))
            rows.append(
                {
                    "script": item.slug,
                    "video": name,
                    "duration_s": round(duration, 2),
                    "size_mb": round(size / 1e6, 2),
                    "folder": item.folder,
                    "blob_url": blobs.get(name, ""),
                }
            )
    return RunSummary(rows, _markdown(rows, len(published), outcome), posters[:MAX_POSTERS])


def nightly_markdown(
    source: str, rendered: list[dict[str, Any]], skipped: list[str], failed: dict[str, str]
) -> str:
    """The nightly sweep's summary.

    Args:
        source: The folder or ``blob:`` prefix swept.
        rendered: One row per rendered script (script, hash, folder).
        skipped: Scripts whose content hash had not changed.
        failed: Script -> one-line reason.

    Returns:
        The markdown summary.
    """
    lines = [
        "# avatarpipe nightly sweep",
        "",
        f"- source: `{source}`",
        f"- rendered: **{len(rendered)}**, unchanged: {len(skipped)}, failed: **{len(failed)}**",
        "",
    ]
    lines += [f"- rendered `{r['script']}` -> `{r['folder']}`" for r in rendered]
    lines += [f"- unchanged `{name}`" for name in skipped]
    lines += [f"- FAILED `{name}`: {reason}" for name, reason in failed.items()]
    return "\n".join(lines)
