"""The picture of a re-encoded output: conform, overlay, burn, encode; and the stills.

Conforming a part is ``fps -> scale -> pad|crop -> setsar -> format``. The scale size is computed
here (not left to ``force_original_aspect_ratio``) so that outputs of one pass that scale a part
to the same size share that work: a 16:9 source scaled for a 9:16 and a 1:1 variant (both
padded) is scaled to 1080x608 once and split (see :class:`ConformKey`).

The encoder settings come from the preset (:func:`video_codec_args`): ``speed`` is the x264/x265
``-preset``, ``video_bitrate_kbps`` a VBV-capped target (max rate 1.5x, buffer 2x) or ``crf`` a
constant quality; see ``templates/presets/README.md`` for how the shipped values were chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from avatarpipe.media.images import sheet_frame_step
from avatarpipe.media.presets import Preset

__all__ = [
    "MAXRATE_FACTOR",
    "ConformKey",
    "conform_key",
    "finish_conform",
    "keyframe_sheet_branch",
    "logo_overlay",
    "poster_at",
    "poster_branch",
    "sheet_branch",
    "sheet_tile_width",
    "start_conform",
    "video_codec_args",
]

MAXRATE_FACTOR = 1.5
VIDEO_ENCODERS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9"}


def _even(value: float) -> int:
    return max(2, int(round(value / 2.0)) * 2)


@dataclass(frozen=True)
class ConformKey:
    """The shareable start of a part's conform chain: frame rate and scaled size.

    Attributes:
        part: Index of the part in the pass's inputs.
        fps: Output frame rate.
        width: Scaled width.
        height: Scaled height.
    """

    part: int
    fps: float
    width: int
    height: int


def conform_key(preset: Preset, part_index: int, width: int, height: int) -> ConformKey:
    """Where a ``width`` x ``height`` part is scaled to before the pad or crop of ``preset``."""
    fw, fh = preset.width / width, preset.height / height
    f = max(fw, fh) if preset.fit == "crop" else min(fw, fh)
    w, h = _even(width * f), _even(height * f)
    if preset.fit == "crop":
        w, h = max(w, preset.width), max(h, preset.height)
    else:
        w, h = min(w, preset.width), min(h, preset.height)
    return ConformKey(part_index, preset.fps, w, h)


def start_conform(stream: Any, key: ConformKey) -> Any:
    """The shared part of the chain: frame rate and scale."""
    return stream.filter("fps", key.fps).filter("scale", key.width, key.height)


def finish_conform(preset: Preset, scaled: Any, duration_s: float) -> Any:
    """Pad or crop a scaled part to the preset's frame and cut it to whole frames."""
    p = preset
    if p.fit == "crop":
        v = scaled.filter("crop", p.width, p.height)
    else:
        v = scaled.filter("pad", p.width, p.height, "(ow-iw)/2", "(oh-ih)/2", color=p.pad_color)
    return (
        v.filter("setsar", 1)
        .filter("format", "yuv420p")
        .filter("tpad", stop_mode="clone", stop_duration=1)
        .filter("trim", duration=f"{duration_s:.6f}")
        .filter("setpts", "PTS-STARTPTS")
    )


def logo_overlay(preset: Preset, video: Any, logo: Path) -> Any:
    """Overlay ``logo`` per ``preset.logo``."""
    p, spec = preset, preset.logo
    w = max(2, int(p.width * spec.width_pct / 100) // 2 * 2)
    margin = int(p.height * spec.margin_pct / 100)
    mark = ffmpeg.input(str(logo)).video.filter("scale", w, -1).filter("format", "rgba")
    if spec.opacity < 1.0:
        mark = mark.filter("colorchannelmixer", aa=spec.opacity)
    x = {"left": str(margin), "right": f"W-w-{margin}", "center": "(W-w)/2"}
    y = {"top": str(margin), "bottom": f"H-h-{margin}", "center": "(H-h)/2"}
    if spec.position == "center":
        xs, ys = x["center"], y["center"]
    else:
        vert, horiz = spec.position.split("-")
        xs, ys = x[horiz], y[vert]
    return ffmpeg.overlay(video, mark, x=xs, y=ys, eof_action="repeat", format="auto")


def video_codec_args(preset: Preset, threads: int | None) -> dict[str, Any]:
    """The encoder options of ``preset`` (``ffmpeg-python`` output keywords)."""
    p = preset
    args: dict[str, Any] = {"vcodec": VIDEO_ENCODERS[p.video_codec], "pix_fmt": "yuv420p"}
    args["g"] = max(1, round(p.fps * 2))
    if p.video_codec in ("h264", "hevc"):
        args["preset"] = p.speed
        if p.video_codec == "hevc":
            args["x265-params"] = "log-level=error"
            if p.container in ("mp4", "mov"):
                args["tag:v"] = "hvc1"
        else:
            args["profile:v"] = "high"
    else:
        speed = {"ultrafast": 8, "superfast": 7, "veryfast": 6, "faster": 5, "fast": 4}
        args["deadline"] = "realtime" if p.speed == "ultrafast" else "good"
        args["cpu-used"] = speed.get(p.speed, 2)
        args["row-mt"] = 1
    if p.video_bitrate_kbps is not None:
        args["video_bitrate"] = f"{p.video_bitrate_kbps}k"
        args["maxrate"] = f"{int(p.video_bitrate_kbps * MAXRATE_FACTOR)}k"
        args["bufsize"] = f"{p.video_bitrate_kbps * 2}k"
    else:
        crf = p.crf if p.crf is not None else (31 if p.video_codec == "vp9" else 23)
        args["crf"] = crf
        if p.video_codec == "vp9":
            args["video_bitrate"] = 0
    if threads:
        args["threads"] = threads
    return args


def poster_at(preset: Preset, total_s: float) -> float:
    """The poster's time: the preset's, else 10 % in; never past the last frame."""
    at = preset.thumbnail_at_s if preset.thumbnail_at_s is not None else total_s * 0.1
    return max(0.0, min(at, total_s - 1.0 / preset.fps))


def poster_branch(preset: Preset, video: Any, total_s: float) -> Any:
    """The poster frame taken from a decoded, finished picture."""
    at = poster_at(preset, total_s)
    return video.filter("trim", start=f"{at:.3f}").filter("setpts", "PTS-STARTPTS")


def sheet_tile_width(preset: Preset, width: int) -> int:
    """Width of one contact-sheet tile for a ``width``-wide picture."""
    return max(2, min(480, width // preset.contact_sheet_cols) // 2 * 2)


def sheet_branch(preset: Preset, video: Any, total_s: float) -> Any:
    """The contact sheet from every frame of a decoded, finished picture (``framestep``)."""
    cols, rows = preset.contact_sheet_cols, preset.contact_sheet_rows
    step = sheet_frame_step(round(total_s * preset.fps), cols, rows)
    return (
        video.filter("framestep", step)
        .filter("scale", sheet_tile_width(preset, preset.width), -2)
        .filter("tile", f"{cols}x{rows}")
    )


def keyframe_sheet_branch(preset: Preset, keyframes: Any, width: int, total_s: float) -> Any:
    """The contact sheet from a keyframes-only decode (``-skip_frame nokey``) of a copied picture.

    Tiles are the first keyframes at least ``total / tiles`` apart, so a copied output's sheet
    costs a few dozen decoded frames instead of all of them.
    """
    cols, rows = preset.contact_sheet_cols, preset.contact_sheet_rows
    gap = max(total_s / (cols * rows) - 0.02, 0.0)
    return (
        keyframes.filter("select", f"isnan(prev_selected_t)+gte(t-prev_selected_t,{gap:.3f})")
        .filter("scale", sheet_tile_width(preset, width), -2)
        .filter("tile", f"{cols}x{rows}")
    )
