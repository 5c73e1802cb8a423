"""The one verified download, and fetching a finished job's videos with it.

:func:`download` writes any byte stream (a result URL from
:meth:`avatarpipe.speech.batch_avatar.BatchAvatarClient.stream`, a blob from
:meth:`avatarpipe.storage.blob.BlobStore.stream`) to ``<dest>.part`` in chunks (constant
memory), flushes and fsyncs it, checks its size against the expected size and the declared
length, lets a check inspect it, and only then renames it onto ``dest``. On any failure the
``.part`` file is removed, so nothing half-written ever carries a final name.

:func:`fetch_job` puts a job's videos in a cache keyed by job id (``<cache>/<job_id>/0001.mp4``).
A file counts as verified once its size matched the service's figure and ffmpeg could read it; a
small ``.verified.json`` beside it records that, so a rerun (after a crash, or the same work
again) skips it. The cache is the local side of the result store (:mod:`avatarpipe.batch.store`),
which re-hashes a stored video against its recorded checksum before any reuse.

A job asked for ``subtitleType: external_file`` writes each input's captions beside its video
(``0001.vtt``): they are fetched into the cache beside the video (from the result folder: the
sibling of the video's URL, or the destination container), checked to be WebVTT with at least
one cue, and then found by :func:`avatarpipe.media.tracks.scene_cues`, which feeds the soft
track, the burned captions and the published ``.vtt``/``.srt``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from avatarpipe.batch.plan import PlannedJob
from avatarpipe.errors import DownloadError, InvalidInputError, MediaError, ResultExpiredError
from avatarpipe.hashing import file_digest
from avatarpipe.media.ffmpeg import probe
from avatarpipe.media.subtitles import parse_subtitles
from avatarpipe.speech.models import (
    BatchSynthesis,
    SubtitleType,
    SummaryFile,
    SummaryResult,
    VideoFormat,
)
from avatarpipe.speech.pipeline import ByteStream, safe_url

__all__ = ["FetchedVideo", "Opener", "ResultApi", "download", "fetch_job", "part_path"]

log = logging.getLogger(__name__)

_MAX_URL_REFRESHES = 3

T = TypeVar("T")

Opener = Callable[[str], AbstractContextManager[ByteStream]]
"""Opens a source (a URL, a blob name) as a :data:`~avatarpipe.speech.pipeline.ByteStream`."""


class ResultApi(Protocol):
    """The part of the batch avatar client used to fetch results."""

    def get_synthesis(self, job_id: str) -> BatchSynthesis: ...  # noqa: D102

    def stream(self, url: str) -> AbstractContextManager[ByteStream]: ...  # noqa: D102


def part_path(dest: Path) -> Path:
    """The temporary name a download is written to before the rename.

    Args:
        dest: The final path.

    Returns:
        ``dest`` with ``.part`` appended to its suffix.
    """
    return dest.with_suffix(dest.suffix + ".part")


def download(
    open_stream: Opener,
    source: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    shown: str | None = None,
    check: Callable[[Path], None] | None = None,
) -> int:
    """Stream ``source`` to ``dest`` and return the number of bytes written.

    Args:
        open_stream: Opens the source (e.g. ``BatchAvatarClient.stream``, ``BlobStore.stream``).
        source: What to open (a result URL, a blob name).
        dest: The final file; its parent is created when missing. An existing file is replaced
            only by a fully verified download.
        expected_size: Bytes the file must have (e.g. ``properties.sizeInBytes``), if known.
        shown: How to name the source in messages (no secrets); ``source`` when omitted.
        check: Inspects the complete ``.part`` file before the rename; raises to reject it.

    Returns:
        The size of the file written.

    Raises:
        ResultExpiredError: Storage answered 403 or 404 (from the stream).
        DownloadError: Any other failure of the stream, a truncated body, a size mismatch, a
            rejection by ``check`` or a local write error; nothing is left behind.
    """
    name = shown or source
    dest = Path(dest)
    part = part_path(dest)
    written = 0
    reading = False
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open_stream(source) as (declared, chunks):
            if expected_size is not None and declared is not None and declared != expected_size:
                raise DownloadError(
                    f"GET {name}: Content-Length {declared} differs from the expected "
                    f"{expected_size} bytes"
                )
            with open(part, "wb") as fh:
                reading = True
                for chunk in chunks:
                    fh.write(chunk)
                    written += len(chunk)
                reading = False
                fh.flush()
                os.fsync(fh.fileno())
        for want, what in ((declared, "Content-Length"), (expected_size, "expected size")):
            if want is not None and written != want:
                raise DownloadError(
                    f"GET {name}: got {written} bytes but the {what} is {want}: "
                    "the download is incomplete"
                )
        if check is not None:
            check(part)
        os.replace(part, dest)
        _fsync_dir(dest.parent)
    except OSError as exc:
        _remove(part)
        raise DownloadError(f"writing {dest}: {exc.strerror or exc}") from None
    except DownloadError as exc:
        _remove(part)
        if reading and not isinstance(exc, ResultExpiredError):
            raise DownloadError(f"{exc.args[0]} (failed after {written} bytes)") from None
        raise
    except BaseException:
        _remove(part)
        raise
    log.info("downloaded %s to %s (%d bytes)", name, dest, written)
    return written


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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


def _inspect(part: Path, final: Path, *, exact: bool) -> dict[str, object]:
    """Probe a complete download (before its rename): what ``.verified.json`` records.

    Raises:
        DownloadError: ffmpeg cannot read it, or it has no video stream.
    """
    try:
        info = probe(part, exact=exact)
    except MediaError as exc:
        raise DownloadError(
            f"{final.name}: downloaded file is not a readable video ({exc})"
        ) from exc
    if info.video is None or info.duration_s <= 0:
        raise DownloadError(f"{final.name}: downloaded file has no video stream")
    return {
        "size_bytes": part.stat().st_size,
        "sha256": file_digest(part),
        "duration_ms": round(info.duration_s * 1000),
    }


def _fetch_video(
    open_stream: Opener,
    source: str,
    final: Path,
    *,
    expected_size: int | None,
    shown: str | None = None,
) -> dict[str, object]:
    """Download one video, verify it, give it its final name, then record it as verified."""
    data: dict[str, object] = {}

    def check(part: Path) -> None:
        # Without a size to compare, only a full read catches a truncated file: its header alone
        # (moov first) still reports the whole duration.
        data.update(_inspect(part, final, exact=expected_size is None))

    download(open_stream, source, final, expected_size=expected_size, shown=shown, check=check)
    tmp = _marker(final).with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, _marker(final))
    return data


def _from_url(
    api: ResultApi,
    job: BatchSynthesis,
    url_of: Callable[[BatchSynthesis], str | None],
    fetch: Callable[[str, int | None], T],
    *,
    sized: bool,
) -> T:
    """Fetch a result URL, with fresh URLs on expiry (re-GET the job on 403/404 from storage)."""
    current = job
    for attempt in range(_MAX_URL_REFRESHES + 1):
        url = url_of(current)
        if not url:
            raise DownloadError(f"job {job.id}: the service gave no result URL")
        try:
            expected = current.properties.size_in_bytes if sized and current.properties else None
            return fetch(url, expected)
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
    blob_stream: Opener | None = None,
) -> list[FetchedVideo]:
    """Download and verify every video of a succeeded job (skipping verified ones).

    Args:
        api: The batch avatar client.
        job: The service's view of the job (``Succeeded``).
        planned: The plan it came from (maps input numbers to video keys).
        cache_dir: The download cache root; files go to ``cache_dir/<job_id>/``.
        blob_stream: Opens blobs of the destination container (packed, multi-input jobs), e.g.
            ``BlobStore.stream``.

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
    if packed and blob_stream is None:
        raise DownloadError(
            f"job {job.id} wrote its results to a destination container; "
            "configure AVATARPIPE_BLOB_CONNECTION_STRING to fetch them"
        )
    summary = _summary(api, job, folder / "summary.json", blob_stream if packed else None)
    videos = []
    for number, item in enumerate(planned.inputs, start=1):
        path = folder / f"{number:04d}.{ext}"
        data = _cached(path)
        downloaded = data is None
        if data is None:
            if packed and blob_stream is not None:
                data = _fetch_video(
                    blob_stream, _relative(job, path.name), path, expected_size=None
                )
            else:

                def fetch(url: str, size: int | None, final: Path = path) -> dict[str, object]:
                    return _fetch_video(
                        api.stream, url, final, expected_size=size, shown=safe_url(url)
                    )

                data = _from_url(
                    api, job, lambda j: j.outputs.result if j.outputs else None, fetch, sized=True
                )
        if _wants_captions(job):
            _fetch_captions(api, job, path, blob_stream if packed else None)
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


def _summary(
    api: ResultApi, job: BatchSynthesis, path: Path, blob_stream: Opener | None
) -> SummaryFile | None:
    """The job's ``summary.json`` (fetched once; a missing one is not an error)."""
    if not path.is_file():
        try:
            if blob_stream is not None:
                download(blob_stream, _relative(job, path.name), path)
            else:
                _from_url(
                    api,
                    job,
                    lambda j: j.outputs.summary if j.outputs else None,
                    lambda url, _size: download(api.stream, url, path, shown=safe_url(url)),
                    sized=False,
                )
        except DownloadError as exc:
            log.warning("no summary.json for %s: %s", job.id, exc)
    return _read_summary(path) if path.is_file() else None


def _wants_captions(job: BatchSynthesis) -> bool:
    return job.avatar_config.subtitle_type == SubtitleType.EXTERNAL_FILE


def _sibling(url: str | None, name: str) -> str | None:
    """The URL of ``name`` in the same result folder as ``url`` (same query string)."""
    if not url:
        return None
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


def _check_captions(part: Path, final: Path) -> None:
    """Reject a caption download that is not WebVTT or whose cues cannot be read.

    Raises:
        DownloadError: It is not.
    """
    try:
        text = part.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DownloadError(f"{final.name}: downloaded captions are not UTF-8 text") from exc
    if not text.lstrip().startswith("WEBVTT"):
        raise DownloadError(f"{final.name}: downloaded captions are not WebVTT")
    if "-->" in text:  # a scene with nothing said has an empty (header-only) file
        try:
            parse_subtitles(text)
        except InvalidInputError as exc:
            raise DownloadError(f"{final.name}: downloaded captions are damaged") from exc


def _fetch_captions(
    api: ResultApi, job: BatchSynthesis, video: Path, blob_stream: Opener | None
) -> Path:
    """Fetch the ``.vtt`` the service wrote beside ``video`` (skipped when already verified).

    Raises:
        DownloadError: It is missing, unreadable or not WebVTT.
        ResultExpiredError: Its URL kept expiring after several refreshes.
    """
    dest = video.with_suffix(".vtt")
    if dest.is_file():
        return dest

    def check(part: Path) -> None:
        _check_captions(part, dest)

    if blob_stream is not None:
        download(blob_stream, _relative(job, dest.name), dest, check=check)
        return dest
    _from_url(
        api,
        job,
        lambda j: _sibling(j.outputs.result if j.outputs else None, dest.name),
        lambda url, _size: download(api.stream, url, dest, shown=safe_url(url), check=check),
        sized=False,
    )
    return dest


def _relative(job: BatchSynthesis, name: str) -> str:
    """The blob path of a result file: ``[destinationPath/]jobId/name``."""
    result = job.outputs.result if job.outputs else None
    if result and not result.startswith(("http://", "https://")) and "/" in result:
        return result.rsplit("/", 1)[0] + "/" + name
    return f"{job.id}/{name}"
