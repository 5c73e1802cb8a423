"""What a spec asks of the video, checked; and the one ffmpeg command that makes it.

The command composes, in a single ffmpeg process: the background+body frame (drawn once, decoded
once, looped in memory), the head sprite track (an ffconcat list, moved by a slow sine for idle
motion and nodding at gesture bookmarks), optional burned-in subtitle strips, the speech WAV and
optional soft subtitles; then crops and encodes with fast presets at the requested bitrate.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from avatarpipe.emulator.rendering import RenderSpec
from avatarpipe.errors import RequestValidationError
from avatarpipe.media.ffmpeg import ffmpeg_exe
from avatarpipe.processes import run_child

__all__ = ["ALLOWED_CODECS", "VideoPlan", "ffmpeg_args", "parse_color", "plan_video"]

ALLOWED_CODECS: dict[str, tuple[str, ...]] = {
    "mp4": ("h264", "hevc", "av1"),
    "webm": ("vp9", "av1"),
}
PHOTO_CODECS = ("h264", "hevc", "vp9")
SUBTITLE_TYPES = ("soft_embedded", "hard_embedded", "external_file", "none")
_COLOR = re.compile(r"^#([0-9a-fA-F]{6})([0-9a-fA-F]{2})?$")


def parse_color(value: str) -> tuple[int, int, int, int]:
    """Parse ``#RRGGBBAA`` (or ``#RRGGBB``, or ``transparent``) into RGBA.

    Args:
        value: The ``backgroundColor`` value.

    Returns:
        (red, green, blue, alpha), each 0-255.

    Raises:
        RequestValidationError: The value is not a colour of that form.
    """
    v = value.strip()
    if v.lower() == "transparent":
        return (0, 0, 0, 0)
    m = _COLOR.match(v)
    if not m:
        raise RequestValidationError(
            f"avatarConfig.backgroundColor {value!r} is not #RRGGBBAA or 'transparent'"
        )
    rgb = m[1]
    alpha = int(m[2], 16) if m[2] else 255
    return (int(rgb[0:2], 16), int(rgb[2:4], 16), int(rgb[4:6], 16), alpha)


@dataclass(frozen=True)
class VideoPlan:
    """The checked video settings of one spec.

    Attributes:
        fmt: ``mp4`` or ``webm``.
        codec: ``h264``, ``hevc``, ``vp9`` or ``av1``.
        canvas: Full frame size before cropping.
        crop: (x, y, width, height) to crop to, or ``None``.
        size: Output frame size.
        color: Background RGBA.
        transparent: The video carries alpha.
        subtitles: The subtitle type.
        bitrate_kbps: Video bitrate.
    """

    fmt: str
    codec: str
    canvas: tuple[int, int]
    crop: tuple[int, int, int, int] | None
    size: tuple[int, int]
    color: tuple[int, int, int, int]
    transparent: bool
    subtitles: str
    bitrate_kbps: int

    @property
    def ext(self) -> str:
        """The file extension (``mp4`` / ``webm``)."""
        return self.fmt


def plan_video(spec: RenderSpec) -> VideoPlan:
    """Check what ``spec`` asks of the video and settle the details.

    Args:
        spec: The render spec.

    Returns:
        The plan.

    Raises:
        RequestValidationError: An unknown or disallowed format/codec pair, transparency outside
            webm+vp9, a bad colour, bitrate, subtitle type or crop rectangle.
    """
    fmt = spec.video_format.lower()
    codec = spec.video_codec.lower()
    if fmt not in ALLOWED_CODECS:
        raise RequestValidationError(
            f"avatarConfig.videoFormat {spec.video_format!r} is not mp4 or webm"
        )
    if codec not in ALLOWED_CODECS[fmt]:
        allowed = ", ".join(ALLOWED_CODECS[fmt])
        raise RequestValidationError(
            f"avatarConfig.videoCodec {spec.video_codec!r} is not allowed in {fmt} (use {allowed})"
        )
    if spec.photo and codec not in PHOTO_CODECS:
        raise RequestValidationError(
            f"avatarConfig.videoCodec {spec.video_codec!r} is not available for photo avatars "
            f"(use {', '.join(PHOTO_CODECS)})"
        )
    color = parse_color(spec.background_color)
    transparent = color[3] < 255 and spec.background_image is None
    if transparent and (fmt, codec) != ("webm", "vp9"):
        raise RequestValidationError(
            "avatarConfig.backgroundColor: a transparent background needs videoFormat webm "
            f"with videoCodec vp9, not {fmt} with {codec}"
        )
    if not 50 <= spec.bitrate_kbps <= 100_000:
        raise RequestValidationError(
            f"avatarConfig.bitrateKbps {spec.bitrate_kbps} is outside 50-100000"
        )
    if spec.subtitle_type not in SUBTITLE_TYPES:
        raise RequestValidationError(
            f"avatarConfig.subtitleType {spec.subtitle_type!r} is not one of "
            f"{', '.join(SUBTITLE_TYPES)}"
        )
    canvas = (512, 512) if spec.photo else (1920, 1080)
    crop: tuple[int, int, int, int] | None = None
    size = canvas
    if spec.video_crop is not None:
        left, top, right, bottom = spec.video_crop
        if not (0 <= left < right <= canvas[0] and 0 <= top < bottom <= canvas[1]):
            raise RequestValidationError(
                f"avatarConfig.videoCrop {spec.video_crop} is not a rectangle inside "
                f"{canvas[0]}x{canvas[1]}"
            )
        w, h = (right - left) // 2 * 2, (bottom - top) // 2 * 2  # 4:2:0 needs even sizes
        if w < 16 or h < 16:
            raise RequestValidationError(
                f"avatarConfig.videoCrop {spec.video_crop} is smaller than 16x16"
            )
        if (w, h) != canvas:
            crop = (left, top, w, h)
            size = (w, h)
    return VideoPlan(
        fmt=fmt,
        codec=codec,
        canvas=canvas,
        crop=crop,
        size=size,
        color=color,
        transparent=transparent,
        subtitles=spec.subtitle_type,
        bitrate_kbps=spec.bitrate_kbps,
    )


@functools.cache
def _encoders() -> frozenset[str]:
    proc = run_child([ffmpeg_exe(), "-hide_banner", "-nostdin", "-encoders"])
    names = set()
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6:
            names.add(parts[1])
    return frozenset(names)


def _video_codec_args(plan: VideoPlan) -> list[str]:
    br = f"{plan.bitrate_kbps}k"
    if plan.codec == "h264":
        return ["-c:v", "libx264", "-preset", "veryfast", "-b:v", br, "-g", "50"]
    if plan.codec == "hevc":
        args = ["-c:v", "libx265", "-preset", "ultrafast", "-b:v", br]
        args += ["-x265-params", "log-level=error", "-g", "50"]
        return args + (["-tag:v", "hvc1"] if plan.fmt == "mp4" else [])
    if plan.codec == "vp9":
        args = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"]
        args += ["-b:v", br, "-g", "50"]
        return args + (["-auto-alt-ref", "0"] if plan.transparent else [])
    if "libaom-av1" in _encoders():
        args = ["-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-row-mt", "1"]
        return args + ["-b:v", br, "-g", "50"]
    return ["-c:v", "libsvtav1", "-preset", "12", "-b:v", br, "-g", "50"]


def ffmpeg_args(
    plan: VideoPlan,
    *,
    base: Path,
    head_track: Path,
    head_pos: tuple[int, int],
    amplitude: tuple[float, float],
    nod_expr: str,
    wav: Path,
    frames: int,
    cue_track: Path | None,
    cue_height: int,
    vtt: Path | None,
    out: Path,
) -> list[str]:
    """Build the arguments (after the binary) of the one ffmpeg run that renders a video.

    Args:
        plan: The checked video settings.
        base: Background with the body, full frame (RGB, or RGBA when transparent).
        head_track: ffconcat list of head sprites.
        head_pos: Top-left of the head at rest.
        amplitude: Idle-motion amplitude in pixels (x, y).
        nod_expr: Extra ``y`` offset expression of ``t`` for gestures (``0`` for none).
        wav: The speech.
        frames: Number of video frames (the WAV is exactly this long).
        cue_track: ffconcat list of subtitle strips to burn in, or ``None``.
        cue_height: Height of those strips.
        vtt: WebVTT file to embed as a soft subtitle track, or ``None``.
        out: The output file.

    Returns:
        ffmpeg arguments; never passed through a shell.
    """
    pix = "yuva420p" if plan.transparent else "yuv420p"
    args = ["-y", "-loglevel", "error"]
    args += ["-i", str(base)]
    args += ["-f", "concat", "-safe", "0", "-i", str(head_track)]
    args += ["-i", str(wav)]
    n_in = 3
    cue_idx = vtt_idx = -1
    if cue_track is not None:
        args += ["-f", "concat", "-safe", "0", "-i", str(cue_track)]
        cue_idx, n_in = n_in, n_in + 1
    if vtt is not None:
        args += ["-f", "webvtt", "-i", str(vtt)]
        vtt_idx, n_in = n_in, n_in + 1
    hx, hy = head_pos
    ax, ay = amplitude
    x = f"{hx}+{ax:.1f}*sin(2*PI*t/5.3)"
    y = f"{hy}+{ay:.1f}*sin(2*PI*t/3.7+1)+{nod_expr}"
    graph = [
        f"[0:v]format={pix},loop=loop=-1:size=1:start=0,fps={25},setsar=1[bg]",
        "[1:v]format=yuva420p,fps=25[head]",
        f"[bg][head]overlay=x='{x}':y='{y}':eval=frame:format=auto[v0]",
    ]
    last = "v0"
    if plan.crop is not None:
        cx, cy, cw, ch = plan.crop
        graph.append(f"[{last}]crop={cw}:{ch}:{cx}:{cy}[vc]")
        last = "vc"
    if cue_track is not None:
        margin = plan.size[1] // 20
        graph.append(f"[{cue_idx}:v]format=yuva420p,fps=25[cues]")
        graph.append(f"[{last}][cues]overlay=x=0:y=H-{cue_height}-{margin}:format=auto[vs]")
        last = "vs"
    graph.append(f"[{last}]trim=end_frame={frames},format={pix}[vout]")
    args += ["-filter_complex", ";".join(graph)]
    args += ["-map", "[vout]", "-map", "2:a"]
    if vtt_idx >= 0:
        args += ["-map", f"{vtt_idx}:s"]
    args += _output_args(plan, pix, subtitles=vtt_idx >= 0)
    args += ["-t", f"{frames / 25:.3f}", str(out)]
    return args


def _output_args(plan: VideoPlan, pix: str, *, subtitles: bool) -> list[str]:
    """Codecs and container of the output (and its soft subtitle track, when there is one)."""
    args = [*_video_codec_args(plan), "-pix_fmt", pix, "-r", "25"]
    if plan.fmt == "mp4":
        args += ["-c:a", "aac", "-b:a", "96k", "-ar", "48000"]
        if subtitles:
            args += ["-c:s", "mov_text", "-metadata:s:s:0", "language=eng"]
        return args + ["-movflags", "+faststart", "-f", "mp4"]
    args += ["-c:a", "libopus", "-b:a", "64k", "-ar", "48000"]
    if subtitles:
        args += ["-c:s", "webvtt", "-metadata:s:s:0", "language=eng"]
    return args + ["-f", "webm"]
