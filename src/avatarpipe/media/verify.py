"""Before a final name: read every packet of what was written and measure its audio.

Nothing a pass wrote gets its final name before :func:`read_back` has demuxed every packet of the
temporary file (a damaged write shows up as a demuxer error), measured its duration and its
audio loudness (``ebur128``, true peak on), and the container has been probed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from pathlib import Path

from avatarpipe.errors import MediaError
from avatarpipe.media.ffmpeg import MediaInfo, probe, run_ffmpeg
from avatarpipe.media.loudness import Loudness, parse_ebur128
from avatarpipe.media.parts import DAMAGE_MARKERS

__all__ = ["read_back", "remove"]

_TIME_RE = re.compile(r"time=(?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)")


def read_back(
    tmp: Path, what: str, timeout: float | None
) -> tuple[MediaInfo, float, Loudness | None]:
    """Read every packet of ``tmp`` and measure its audio.

    Args:
        tmp: The written file.
        what: Its final name, for messages.
        timeout: Seconds ffmpeg may run.

    Returns:
        The container probe, the duration read and the audio's loudness (``None`` without
        audio).

    Raises:
        MediaError: The file cannot be read or is damaged.
    """
    info = probe(tmp)
    args = ["-v", "info", "-i", str(tmp)]
    if info.audio is not None:
        args += ["-map", "0:a:0", "-af", "ebur128=peak=true:framelog=verbose"]
    if info.video is not None:
        args += ["-map", "0:v:0", "-c:v", "copy"]
    log = run_ffmpeg([*args, "-f", "null", "-"], what=f"verify {what}", timeout=timeout)
    if any(marker in log for marker in DAMAGE_MARKERS):
        raise MediaError(f"{what}: the written file is damaged")
    times = _TIME_RE.findall(log)
    duration = info.duration_s
    if times:
        h, m, s = times[-1]
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    loud = parse_ebur128(log) if info.audio is not None else None
    return info, duration, loud


def remove(paths: Iterable[Path | None]) -> None:
    """Delete files that may or may not exist (cleanup after a failure)."""
    for path in paths:
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()
