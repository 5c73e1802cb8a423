"""What a run leaves in the Prefect UI: the summary artifact, the video table, the posters.

Nothing secret goes into an artifact (artifacts live in the Prefect database): blob links are
plain URLs without a SAS, and posters are embedded as small ``data:`` PNGs instead of SAS links.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image
from prefect.artifacts import (
    create_image_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from avatarpipe.errors import AvatarpipeError
from avatarpipe.storage.blob import store_from_settings
from flows.speech import settings

if TYPE_CHECKING:
    from flows.script_to_video import PublishedVideo
    from flows.synthesize import SynthesisOutcome

__all__ = [
    "POSTER_WIDTH",
    "PRICE_PER_AVATAR_MINUTE_USD",
    "poster_data_url",
    "report_nightly",
    "report_run",
]

log = logging.getLogger(__name__)

# Rough list price of batch avatar synthesis, for the summary's estimate only.
PRICE_PER_AVATAR_MINUTE_USD = 0.60
POSTER_WIDTH = 320
"""Width of the poster embedded in the image artifact (a few tens of KB as a data URL)."""


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


def _outputs(item: PublishedVideo) -> dict[str, dict[str, Any]]:
    """The manifest's outputs by file name (empty when the manifest is unreadable)."""
    try:
        data = json.loads(Path(item.manifest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(o.get("path")): o for o in data.get("outputs", []) if isinstance(o, dict)}


def _blob_urls(item: PublishedVideo) -> dict[str, str]:
    """File name -> plain blob URL (no SAS) of what was published to Blob Storage."""
    if not item.blob_names:
        return {}
    try:
        store = store_from_settings(settings())
    except AvatarpipeError:
        return {}
    if store is None:
        return {}
    return {name.rsplit("/", 1)[-1]: store.blob_url(name) for name in item.blob_names}


def report_run(published: list[PublishedVideo], outcome: SynthesisOutcome) -> None:
    """Leave the run's summary, video table and posters in the UI.

    The summary lists every video with its duration, size and where it is (folder, plain blob
    URL), the billed avatar seconds and a cost estimate. Posters become image artifacts with an
    embedded PNG. No secret reaches an artifact: blob links carry no SAS.

    Args:
        published: What the run published.
        outcome: The synthesis outcome (jobs with their billing details).

    Raises:
        OSError: A published video disappeared before it could be measured.
    """
    seconds = sum(j.billing_seconds or 0 for j in outcome.jobs)
    rows: list[dict[str, Any]] = []
    posters: list[tuple[str, Path]] = []
    for item in published:
        outputs = _outputs(item)
        blobs = _blob_urls(item)
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
    create_table_artifact(rows, key="avatarpipe-videos", description="published videos")
    cost = seconds / 60 * PRICE_PER_AVATAR_MINUTE_USD
    lines = [
        "# avatarpipe run summary",
        "",
        f"- scripts published: **{len(published)}**",
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
    create_markdown_artifact("\n".join(lines), key="avatarpipe-summary", description="run summary")
    for label, png in posters[:4]:
        try:
            create_image_artifact(
                poster_data_url(png), key="avatarpipe-poster", description=f"poster of {label}"
            )
        except OSError as exc:
            log.warning("poster %s not embedded: %s", png.name, exc)


def report_nightly(
    source: str, rendered: list[dict[str, Any]], skipped: list[str], failed: dict[str, str]
) -> None:
    """Leave the nightly sweep's summary in the UI.

    Args:
        source: The folder or ``blob:`` prefix swept.
        rendered: One row per rendered script (script, hash, folder, videos).
        skipped: Scripts whose content hash had not changed.
        failed: Script -> one-line reason.
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
    create_markdown_artifact(
        "\n".join(lines), key="avatarpipe-nightly", description="nightly sweep summary"
    )
