"""Fetching a finished job's videos: streamed, verified, cached by job id, never re-downloaded.

Downloads land in a cache keyed by job id (``<cache>/<job_id>/0001.mp4``). A file counts as
verified once its size matched the service's figure and ffmpeg could read it; a small
``.verified.json`` beside it records that, so a rerun (after a crash, or the same work again)
skips it. Nothing is ever left under a final name unless it was verified.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from avatarpipe.batch.plan import PlannedJob
from avatarpipe.errors import DownloadError, MediaError, ResultExpiredError
from avatarpipe.hashing import file_digest
from avatarpipe.media.ffmpeg import probe
from avatarpipe.speech.models import BatchSynthesis, SummaryFile, SummaryResult, VideoFormat

__all__ = ["FetchedVideo", "ResultApi", "fetch_job"]

log = logging.getLogger(__name__)

_MAX_URL_REFRESHES = 3

BlobFetcher = Callable[[str, Path], int]
"""Downloads a blob (path relative to the destination container) to a file; returns its size."""


class ResultApi(Protocol):
    """The part of the Speech client used to fetch results."""

    def get_synthesis(self, job_id: str) -> BatchSynthesis: ...  # noqa: D102

    def download(  # noqa: D102
        self, url: str, dest: Path, *, expected_size: int | None = None
    ) -> int: ...


@dataclass(frozen=True)
class FetchedVideo:
    """One verified video in the cache.

    Attributes:
        key: The video's key from the plan (``scene-001``).
        job_id: The job that made it.
        index: Its 1-based input number in the job (``0001``).
        path: The verified file.
        size_bytes: Its size.
        sha256: Its SHA-256.
        duration_ms: Its duration as probed.
        summary: The job's ``summary.json`` entry for it, when the service wrote one.
        downloaded: False when the file was already verified in the cache.
    """

    key: str
    job_id: str
    index: int
    path: Path
    size_bytes: int
    sha256: str
    duration_ms: int
    summary: SummaryResult | None
    downloaded: bool


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _cached(path: Path) -> dict[str, object] | None:
    marker = _marker(path)
    if not (path.is_file() and marker.is_file()):
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("size_bytes") != path.stat().st_size:
        return None
    return data


def _verify(path: Path, final: Path, expected_size: int | None) -> dict[str, object]:
    """Check a downloaded file, give it its final name, then record it as verified."""
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{final.name}: {size} bytes, the service said {expected_size}")
    try:
        # Without a size to compare, only a full read catches a truncated file: its header alone
        # (moov first) still reports the whole duration.
        info = probe(path, exact=expected_size is None)
    except MediaError as exc:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"{final.name}: downloaded file is not a readable video ({exc})"
        ) from exc
    if info.video is None or info.duration_s <= 0:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{final.name}: downloaded file has no video stream")
    data: dict[str, object] = {
        "size_bytes": size,
        "sha256": file_digest(path),
        "duration_ms": round(info.duration_s * 1000),
    }
    os.replace(path, final)
    tmp = _marker(final).with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, _marker(final))
    return data


def _download_url(
    api: ResultApi,
    job: BatchSynthesis,
    dest: Path,
    url_of: Callable[[BatchSynthesis], str | None],
    *,
    sized: bool,
) -> int:
    """Download with fresh URLs on expiry: re-GET the job when storage answers 403/404."""
    current = job
    for attempt in range(_MAX_URL_REFRESHES + 1):
        url = url_of(current)
        if not url:
            raise DownloadError(f"job {job.id}: the service gave no result URL")
        try:
            expected = current.properties.size_in_bytes if sized and current.properties else None
            return api.download(url, dest, expected_size=expected)
        except ResultExpiredError:
            if attempt == _MAX_URL_REFRESHES:
                raise
            log.info("result URL of %s expired: asking the service for a fresh one", job.id)
            assert job.id is not None
            current = api.get_synthesis(job.id)
    raise AssertionError("unreachable")  # pragma: no cover


def _read_summary(path: Path) -> SummaryFile | None:
    try:
        return SummaryFile.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        log.warning("summary.json of %s is unreadable; going on without it", path.parent.name)
        return None


def fetch_job(
    api: ResultApi,
    job: BatchSynthesis,
    planned: PlannedJob,
    cache_dir: Path,
    *,
    blob_fetch: BlobFetcher | None = None,
) -> list[FetchedVideo]:
    """Download and verify every video of a succeeded job (skipping verified ones).

    Args:
        api: The Speech client.
        job: The service's view of the job (``Succeeded``).
        planned: The plan it came from (maps input numbers to video keys).
        cache_dir: The download cache root; files go to ``cache_dir/<job_id>/``.
        blob_fetch: Fetches from the destination container (packed, multi-input jobs).

    Returns:
        One verified video per input, in input order.

    Raises:
        DownloadError: A file could not be fetched or failed verification (nothing is left
            behind under its final name).
        ResultExpiredError: The result URL kept expiring after several refreshes.
    """
    assert job.id is not None
    folder = cache_dir / job.id
    folder.mkdir(parents=True, exist_ok=True)
    fmt = job.avatar_config.video_format or VideoFormat.MP4
    ext = fmt.value.lower()
    packed = len(planned.inputs) > 1 or (
        job.outputs is not None
        and job.outputs.result is not None
        and not job.outputs.result.startswith(("http://", "https://"))
    )
    summary_path = folder / "summary.json"
    if packed and blob_fetch is None:
        raise DownloadError(
            f"job {job.id} wrote its results to a destination container; "
            "configure AVATARPIPE_BLOB_CONNECTION_STRING to fetch them"
        )
    if not summary_path.is_file():
        try:
            if packed:
                assert blob_fetch is not None
                blob_fetch(_relative(job, "summary.json"), summary_path)
            else:
                _download_url(
                    api,
                    job,
                    summary_path,
                    lambda j: j.outputs.summary if j.outputs else None,
                    sized=False,
                )
        except DownloadError as exc:
            log.warning("no summary.json for %s: %s", job.id, exc)
    summary = _read_summary(summary_path) if summary_path.is_file() else None
    videos = []
    for number, item in enumerate(planned.inputs, start=1):
        name = f"{number:04d}.{ext}"
        path = folder / name
        data = _cached(path)
        downloaded = data is None
        if data is None:
            incoming = folder / f".{number:04d}.incoming.{ext}"  # verified before its final name
            if packed:
                assert blob_fetch is not None
                blob_fetch(_relative(job, name), incoming)
                data = _verify(incoming, path, None)
            else:
                _download_url(
                    api,
                    job,
                    incoming,
                    lambda j: j.outputs.result if j.outputs else None,
                    sized=True,
                )
                expected = job.properties.size_in_bytes if job.properties else None
                data = _verify(incoming, path, expected)
        entry = None
        if summary is not None and len(summary.results) >= number:
            entry = summary.results[number - 1]
        videos.append(
            FetchedVideo(
                key=item.key,
                job_id=job.id,
                index=number,
                path=path,
                size_bytes=int(str(data["size_bytes"])),
                sha256=str(data["sha256"]),
                duration_ms=int(str(data["duration_ms"])),
                summary=entry,
                downloaded=downloaded,
            )
        )
    return videos


def _relative(job: BatchSynthesis, name: str) -> str:
    """The blob path of a result file: ``[destinationPath/]jobId/name``."""
    result = job.outputs.result if job.outputs else None
    if result and not result.startswith(("http://", "https://")) and "/" in result:
        return result.rsplit("/", 1)[0] + "/" + name
    return f"{job.id}/{name}"
