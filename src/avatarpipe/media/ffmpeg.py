"""The ffmpeg runtime: which binary, one runner, and probing without ``ffprobe``.

``ffmpeg`` from ``PATH`` wins when present; otherwise the binary shipped in the ``imageio-ffmpeg``
wheel is used. That wheel has no ``ffprobe``, so :func:`probe` reads what ``ffmpeg -i`` prints
and, for an exact duration, decodes the file to the null muxer.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatarpipe.errors import MediaError
from avatarpipe.processes import run_child

__all__ = ["MediaInfo", "StreamInfo", "ffmpeg_exe", "probe", "run_ffmpeg"]

_TAIL_LINES = 15


@functools.cache
def ffmpeg_exe() -> str:
    """Return the path of the ffmpeg binary to use.

    Returns:
        ``ffmpeg`` from ``PATH`` if there is one, else the ``imageio-ffmpeg`` wheel's binary.

    Raises:
        MediaError: Neither is available.
    """
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception as exc:  # pragma: no cover - the wheel is a dependency
        raise MediaError(f"no ffmpeg on PATH and imageio-ffmpeg failed: {exc}") from exc


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-_TAIL_LINES:])


def run_ffmpeg(args: Sequence[str], *, what: str = "ffmpeg", timeout: float | None = None) -> str:
    """Run ffmpeg with ``args`` (never through a shell) and return its stderr.

    Args:
        args: Arguments after the binary, e.g. ``["-y", "-i", "in.mp4", "out.mp4"]``. Arguments
            built by ``ffmpeg-python`` (``stream.get_args()``) fit here.
        what: A few words naming the job, used in the error message.
        timeout: Seconds before the process is killed.

    Returns:
        ffmpeg's stderr (its log), for parsing.

    Raises:
        MediaError: ffmpeg exited non-zero or timed out; carries the exit code and stderr tail.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    try:
        proc = run_child(cmd, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"{what}: ffmpeg timed out after {timeout} s") from exc
    if proc.returncode != 0:
        tail = _tail(proc.stderr)
        last = tail.splitlines()[-1] if tail else "no output"
        raise MediaError(
            f"{what}: ffmpeg exited {proc.returncode}: {last}",
            returncode=proc.returncode,
            stderr_tail=tail,
        )
    return proc.stderr


@dataclass(frozen=True)
class StreamInfo:
    """One stream as ffmpeg describes it.

    Attributes:
        index: Stream index in the container.
        kind: ``video``, ``audio``, ``subtitle`` or ``data``.
        codec: Codec name as ffmpeg prints it (``h264``, ``hevc``, ``vp9``, ``av1``, ``aac``,
            ``opus``, ``mov_text``, ``webvtt``...).
        width: Video width in pixels.
        height: Video height in pixels.
        fps: Video frame rate.
        pix_fmt: Video pixel format (``yuva420p`` carries alpha).
        sample_rate: Audio sample rate in Hz.
        channels: Audio channel layout as printed (``mono``, ``stereo``).
        alpha: Whether the stream carries an alpha channel (pixel format or ``alpha_mode`` tag).
        bitrate_kbps: The stream's bitrate as the container states it, when it does.
        color: Video colour properties as printed after the pixel format (``tv, bt709,
            progressive``), ``None`` when none are printed.
    """

    index: int
    kind: str
    codec: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    pix_fmt: str | None = None
    sample_rate: int | None = None
    channels: str | None = None
    alpha: bool = False
    bitrate_kbps: int | None = None
    color: str | None = None


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` found in a file.

    Attributes:
        path: The probed file.
        format_name: The demuxer name (``mov,mp4,m4a,3gp,3g2,mj2``, ``matroska,webm``...).
        duration_s: Container duration in seconds (decoded duration when ``exact=True``).
        bitrate_kbps: Overall bitrate as printed, when printed.
        streams: All streams, in order.
    """

    path: Path
    format_name: str
    duration_s: float
    bitrate_kbps: int | None
    streams: list[StreamInfo] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[StreamInfo]:
        """Return the streams of one kind (``video``, ``audio``, ``subtitle``)."""
        return [s for s in self.streams if s.kind == kind]

    @property
    def video(self) -> StreamInfo | None:
        """The first video stream, if any (attached pictures excluded)."""
        streams = self.of_kind("video")
        return streams[0] if streams else None

    @property
    def audio(self) -> StreamInfo | None:
        """The first audio stream, if any."""
        streams = self.of_kind("audio")
        return streams[0] if streams else None


_INPUT_RE = re.compile(r"^Input #0, (?P<fmt>[^,]+(?:,[^,\s']+)*), from")
_DURATION_RE = re.compile(
    r"Duration: (?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)(?:.*?bitrate: (?P<br>\d+) kb/s)?"
)
_STREAM_RE = re.compile(
    r"^\s*Stream #0:(?P<idx>\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?: "
    r"(?P<kind>Video|Audio|Subtitle|Data|Attachment): (?P<rest>.*)$"
)
_SIZE_RE = re.compile(r"\b(?P<w>\d{2,5})x(?P<h>\d{2,5})\b")
_FPS_RE = re.compile(r"(?P<fps>\d+(?:\.\d+)?) fps")
_HZ_RE = re.compile(r"(?P<hz>\d+) Hz, (?P<ch>[^,]+)")
_KBPS_RE = re.compile(r"(?P<kbps>\d+) kb/s")
_TIME_RE = re.compile(r"time=(?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)")


def _parse_stream(idx: int, kind: str, rest: str, following: list[str]) -> StreamInfo:
    codec = rest.split(",")[0].split(" ")[0].strip()
    info: dict[str, Any] = {"index": idx, "kind": kind.lower(), "codec": codec}
    kbps = _KBPS_RE.search(rest)
    if kbps:
        info["bitrate_kbps"] = int(kbps["kbps"])
    if kind == "Video":
        parts = [p.strip() for p in re.split(r",(?![^()]*\))", rest)]
        if len(parts) > 1:
            info["pix_fmt"] = parts[1].split("(")[0].strip()
            if "(" in parts[1]:
                info["color"] = parts[1].split("(", 1)[1].rstrip(")").strip()
        size = _SIZE_RE.search(rest)
        if size:
            info["width"], info["height"] = int(size["w"]), int(size["h"])
        fps = _FPS_RE.search(rest)
        if fps:
            info["fps"] = float(fps["fps"])
        pix = str(info.get("pix_fmt") or "")
        alpha_tag = any(re.match(r"\s*alpha_mode\s*:\s*1", line) for line in following)
        info["alpha"] = (
            pix.startswith(("yuva", "rgba", "argb", "bgra", "abgr", "gbrap")) or alpha_tag
        )
    elif kind == "Audio":
        hz = _HZ_RE.search(rest)
        if hz:
            info["sample_rate"] = int(hz["hz"])
            info["channels"] = hz["ch"].strip()
    return StreamInfo(**info)


def probe(path: str | Path, *, exact: bool = False) -> MediaInfo:
    """Describe a media file's container and streams using only ``ffmpeg``.

    Args:
        path: The file to probe.
        exact: Decode the whole file to measure its real duration (slower; catches truncation).

    Returns:
        The container format, duration, bitrate and streams.

    Raises:
        MediaError: The file is missing or ffmpeg cannot read it.
    """
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"{p}: no such file")
    proc = run_child([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(p)])
    err = proc.stderr
    lines = err.splitlines()
    fmt = ""
    duration = 0.0
    bitrate: int | None = None
    streams: list[StreamInfo] = []
    for i, line in enumerate(lines):
        m_in = _INPUT_RE.match(line)
        if m_in:
            fmt = m_in["fmt"]
            continue
        m_d = _DURATION_RE.search(line)
        if m_d and "Duration:" in line and not streams:
            duration = int(m_d["h"]) * 3600 + int(m_d["m"]) * 60 + float(m_d["s"])
            bitrate = int(m_d["br"]) if m_d["br"] else None
            continue
        m_s = _STREAM_RE.match(line)
        if m_s:
            following: list[str] = []
            for nxt in lines[i + 1 :]:
                if _STREAM_RE.match(nxt) or not nxt.startswith("    "):
                    break
                following.append(nxt)
            if "(attached pic)" in m_s["rest"]:
                continue
            streams.append(_parse_stream(int(m_s["idx"]), m_s["kind"], m_s["rest"], following))
    if not fmt:
        last = _tail(err).splitlines()[-1] if err.strip() else "unreadable"
        raise MediaError(f"{p}: not a readable media file ({last})", stderr_tail=_tail(err))
    if exact:
        log = run_ffmpeg(["-v", "info", "-i", str(p), "-f", "null", "-"], what=f"decode {p.name}")
        times = _TIME_RE.findall(log)
        if times:
            h, m, s = times[-1]
            duration = int(h) * 3600 + int(m) * 60 + float(s)
        if "Invalid data" in log or "partial file" in log or "moov atom not found" in log:
            raise MediaError(f"{p}: file is damaged or truncated", stderr_tail=_tail(log))
    return MediaInfo(
        path=p, format_name=fmt, duration_s=duration, bitrate_kbps=bitrate, streams=streams
    )
