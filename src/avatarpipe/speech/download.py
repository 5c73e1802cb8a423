"""Streaming download of a result URL to disk: constant memory, atomic, size-checked.

The body goes to ``<dest>.part`` in chunks, is flushed and fsynced, its size is checked against
``expected_size`` and ``Content-Length``, and only then is it renamed onto ``dest``. On any failure
the ``.part`` file is removed, so nothing half-written ever carries a final name (and no stray
``.part`` is left behind). Signed query strings never appear in messages.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import httpx

from avatarpipe.errors import DownloadError, ResultExpiredError

__all__ = ["CHUNK_SIZE", "download", "safe_url"]

CHUNK_SIZE = 1024 * 1024
log = logging.getLogger("avatarpipe.speech.download")

_DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def safe_url(url: str | httpx.URL) -> str:
    """The URL without its query string (which may hold a SAS signature).

    Args:
        url: Any URL.

    Returns:
        ``scheme://host[:port]/path`` plus ``?***`` when there was a query.
    """
    try:
        parsed = httpx.URL(str(url))
    except (httpx.InvalidURL, TypeError, ValueError):
        text = str(url)
        return text.split("?", 1)[0] + ("?***" if "?" in text else "")
    port = f":{parsed.port}" if parsed.port else ""
    base = f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"
    return base + ("?***" if parsed.query else "")


def part_path(dest: Path) -> Path:
    """The temporary name a download is written to before the rename.

    Args:
        dest: The final path.

    Returns:
        ``dest`` with ``.part`` appended to its suffix.
    """
    return dest.with_suffix(dest.suffix + ".part")


def download(
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    chunk_size: int = CHUNK_SIZE,
    http: httpx.Client | None = None,
    timeout: httpx.Timeout | None = None,
    auth: httpx.Auth | None = None,
) -> int:
    """Stream ``url`` to ``dest`` and return the number of bytes written.

    Args:
        url: The result URL (usually a SAS URL on Blob Storage).
        dest: The final file; its parent is created when missing. An existing file is replaced
            only by a fully verified download.
        expected_size: Bytes the file must have (e.g. ``properties.sizeInBytes``), if known.
        chunk_size: Bytes per read; memory use stays around this.
        http: The client to use; a short-lived one is made when omitted.
        timeout: Connect/read timeouts; 10 s connect and 60 s read by default.
        auth: Credentials to send; ``None`` for signed URLs (the usual case).

    Returns:
        The size of the file written.

    Raises:
        ResultExpiredError: Storage answered 403 or 404 (the signed URL expired or the job's
            results were deleted): re-GET the job for a fresh URL.
        DownloadError: Any other HTTP error, a transport failure, a truncated body, a size
            mismatch or a local write error; nothing is left behind.
        ValueError: ``chunk_size`` is not positive.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    shown = safe_url(url)
    dest = Path(dest)
    part = part_path(dest)
    own = http is None
    client = http or httpx.Client(follow_redirects=True)
    written = 0
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with client.stream(
            "GET", url, timeout=timeout or _DEFAULT_TIMEOUT, auth=auth or httpx.USE_CLIENT_DEFAULT
        ) as response:
            status = response.status_code
            if status in (403, 404):
                raise ResultExpiredError(
                    f"GET {shown}: storage answered {status}: the result URL expired or the "
                    "result was deleted; fetch the job again for a fresh URL"
                )
            if not 200 <= status < 300:
                raise DownloadError(f"GET {shown}: storage answered {status}")
            declared = _declared_length(response)
            if expected_size is not None and declared is not None and declared != expected_size:
                raise DownloadError(
                    f"GET {shown}: Content-Length {declared} differs from the expected "
                    f"{expected_size} bytes"
                )
            with open(part, "wb") as fh:
                for chunk in response.iter_bytes(chunk_size):
                    fh.write(chunk)
                    written += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
        for want, source in ((declared, "Content-Length"), (expected_size, "expected size")):
            if want is not None and written != want:
                raise DownloadError(
                    f"GET {shown}: got {written} bytes but the {source} is {want}: "
                    "the download is incomplete"
                )
        os.replace(part, dest)
        _fsync_dir(dest.parent)
    except DownloadError:
        _remove(part)
        raise
    except httpx.HTTPError as exc:
        _remove(part)
        raise DownloadError(
            f"GET {shown}: {type(exc).__name__} after {written} bytes: {_clean(exc, url)}"
        ) from None
    except OSError as exc:
        _remove(part)
        raise DownloadError(f"writing {dest}: {exc.strerror or exc}") from None
    except BaseException:
        _remove(part)
        raise
    finally:
        if own:
            client.close()
    log.info("downloaded %s to %s (%d bytes)", shown, dest, written)
    return written


def _declared_length(response: httpx.Response) -> int | None:
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    raw = response.headers.get("Content-Length")
    if raw is None or encoding not in ("", "identity"):
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _clean(exc: BaseException, url: str) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace(url, safe_url(url))


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
