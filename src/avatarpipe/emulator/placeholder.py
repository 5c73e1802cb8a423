"""A placeholder renderer: a plain colour frame with a sine tone, of the length the text would take.

It makes a valid file of the requested container, codec, bitrate and frame size with the fastest
encoder settings, so the emulator works (and its tests run quickly) without the real renderer.
For ``subtitleType: external_file`` it writes ``<stem>.vtt`` beside the video as the service
does (one cue: the whole text over the whole video).
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET  # noqa: S405 - parsing our own callers' SSML for errors only
from pathlib import Path

from avatarpipe.emulator.rendering import RenderedInput, RenderSpec
from avatarpipe.errors import RequestValidationError
from avatarpipe.media.ffmpeg import run_ffmpeg

__all__ = ["PlaceholderRenderer", "estimate_duration_s", "spoken_text"]

SECONDS_PER_WORD = 0.35
MIN_DURATION_S = 1.0
FULL_FRAME = (1920, 1080)
PHOTO_FRAME = (512, 512)
FPS = 25

_TAG = re.compile(r"<[^>]+>")
_WORD = re.compile(r"\w+", re.UNICODE)

_VIDEO_ARGS: dict[str, list[str]] = {
    "h264": ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "stillimage"],
    "hevc": ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"],
    "vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"],
    "av1": ["-c:v", "libsvtav1", "-preset", "12"],
}


def spoken_text(spec: RenderSpec) -> str:
    """Return the words that would be spoken (SSML tags removed, entities decoded)."""
    text = spec.content
    if spec.input_kind == "SSML":
        text = html.unescape(_TAG.sub(" ", text))
    return " ".join(text.split())


def estimate_duration_s(spec: RenderSpec) -> float:
    """Estimate the video length: ``SECONDS_PER_WORD`` per word, at least ``MIN_DURATION_S``."""
    words = len(_WORD.findall(spoken_text(spec)))
    return max(MIN_DURATION_S, round(words * SECONDS_PER_WORD, 2))


def _frame_size(spec: RenderSpec, override: tuple[int, int] | None) -> tuple[int, int]:
    width, height = override or (PHOTO_FRAME if spec.photo else FULL_FRAME)
    if spec.video_crop and override is None:
        left, top, right, bottom = spec.video_crop
        width, height = max(2, right - left), max(2, bottom - top)
    return width - width % 2, height - height % 2


class PlaceholderRenderer:
    """Renders a colour frame plus a tone (a :class:`~avatarpipe.emulator.rendering.Renderer`)."""

    def __init__(self, frame_size: tuple[int, int] | None = None) -> None:
        """Create the renderer.

        Args:
            frame_size: Force this frame size (tests use a small one); ``None`` uses the size
                the service would produce (1920x1080, 512x512 for photo avatars, or the crop).
        """
        self.frame_size = frame_size

    def render(self, spec: RenderSpec, out_dir: Path, stem: str) -> RenderedInput:
        """Render ``spec`` to ``out_dir/<stem>.<mp4|webm>``.

        Args:
            spec: What to render.
            out_dir: Output folder (created if missing).
            stem: File stem, e.g. ``0001``.

        Returns:
            The video and its measured facts.

        Raises:
            MediaError: ffmpeg failed.
            RequestValidationError: The SSML is not well-formed (the service fails such jobs).
        """
        if spec.input_kind == "SSML":
            try:
                ET.fromstring(spec.content)
            except ET.ParseError as exc:
                raise RequestValidationError(f"The SSML is not well-formed: {exc}") from None
        out_dir.mkdir(parents=True, exist_ok=True)
        duration = estimate_duration_s(spec)
        width, height = _frame_size(spec, self.frame_size)
        color = spec.background_color.lstrip("#")
        if len(color) == 6:
            color += "FF"
        alpha = color[-2:].upper() != "FF" and spec.video_codec == "vp9"
        out = out_dir / f"{stem}.{spec.video_format}"
        tmp = out.with_name(f".{out.name}.part{out.suffix}")
        audio = ["-c:a", "aac", "-b:a", "64k"]
        if spec.video_format == "webm":
            audio = ["-c:a", "libopus", "-b:a", "48k"]
        args = [
            "-y",
            "-hide_banner",
            "-f",
            "lavfi",
            "-i",
            f"color=c=0x{color}:s={width}x{height}:r={FPS}:d={duration}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=24000:duration={duration}",
            *_VIDEO_ARGS[spec.video_codec],
            "-b:v",
            f"{spec.bitrate_kbps}k",
            "-pix_fmt",
            "yuva420p" if alpha else "yuv420p",
            *(["-auto-alt-ref", "0"] if alpha else []),
            *audio,
            "-t",
            str(duration),
            "-f",
            spec.video_format if spec.video_format == "webm" else "mp4",
            str(tmp),
        ]
        run_ffmpeg(args, what=f"placeholder render of {stem}")
        tmp.replace(out)
        extra: list[Path] = []
        if spec.subtitle_type == "external_file":  # the service writes <stem>.vtt beside it
            vtt = out_dir / f"{stem}.vtt"
            end = max(1, round(duration * 1000) - 1)
            text = " ".join(spoken_text(spec).split()) or "..."
            vtt.write_text(f"WEBVTT\n\n00:00:00.000 --> {_vtt_ts(end)}\n{text}\n", "utf-8")
            extra.append(vtt)
        return RenderedInput(
            video=out,
            duration_ms=round(duration * 1000),
            size_bytes=out.stat().st_size,
            characters=len(spoken_text(spec)),
            extra_files=extra,
        )


def _vtt_ts(ms: int) -> str:
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"
