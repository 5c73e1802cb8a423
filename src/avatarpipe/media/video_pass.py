"""The picture of a re-encoded output: conform, overlay, burn, encode; and the stills.

Conforming a part is ``fps -> [window] -> scale -> pad -> setsar -> format``. Where the picture
goes is computed here (:func:`placement`), so that outputs of one pass that crop and scale a part
the same way share that work (see :class:`ConformKey`). ``fit: crop`` (the default) reframes a
variant around the presenter: a 9:16 variant of a 16:9 delivery is a window around the presenter
scaled to the full width, with the script's background above and below; ``fit: pad``
letterboxes the whole picture.

A transparent source keeps its alpha through the chain (``yuva444p``): an output whose codec
carries alpha (VP9 in WebM, ProRes 4444) keeps it; any other is composited onto ``pad_color``.

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
    "PRESENTER_WIDTH",
    "ConformKey",
    "Placement",
    "base_conform",
    "conform_key",
    "finish_conform",
    "keyframe_sheet_branch",
    "logo_overlay",
    "placement",
    "poster_at",
    "poster_branch",
    "sheet_branch",
    "sheet_tile_width",
    "start_conform",
    "video_codec_args",
]

MAXRATE_FACTOR = 1.5
VIDEO_ENCODERS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "prores": "prores_ks"}


def _even(value: float) -> int:
    return max(2, int(round(value / 2.0)) * 2)


PRESENTER_WIDTH = 0.45
"""Share of the source width the presenter's box takes (centred), with a margin.

Azure's standard avatars and the emulator's presenter (``emulator/render/avatar.py``: shoulders
740 px of 1920, head 440x560 px at the top centre) sit centred in a 16:9 frame; a window this
wide keeps shoulders and face in a 9:16 variant.
"""


@dataclass(frozen=True)
class Placement:
    """Where a part's picture goes in an output.

    Attributes:
        window: The crop of the source ``(x, y, w, h)``, ``None`` for the whole picture.
        width: Scaled width of that window.
        height: Scaled height.
        x: Left of the scaled window in the output frame.
        y: Top of the scaled window in the output frame.
    """

    window: tuple[int, int, int, int] | None
    width: int
    height: int
    x: int
    y: int

    def map_box(
        self, box: tuple[float, float, float, float], src: tuple[int, int]
    ) -> tuple[float, float, float, float]:
        """Map a source box ``(x0, y0, x1, y1)`` into output pixels."""
        wx, wy, ww, wh = self.window or (0, 0, src[0], src[1])
        fx, fy = self.width / ww, self.height / wh
        x0, y0, x1, y1 = box
        return (
            self.x + (x0 - wx) * fx,
            self.y + (y0 - wy) * fy,
            self.x + (x1 - wx) * fx,
            self.y + (y1 - wy) * fy,
        )


def placement(preset: Preset, width: int, height: int) -> Placement:
    """How a ``width`` x ``height`` picture is framed in ``preset``'s frame.

    ``fit: pad`` scales the whole picture into the frame (letterbox). ``fit: crop`` reframes:
    a window of the source's full height around the presenter, as wide as the output's aspect
    asks but never narrower than the presenter (:data:`PRESENTER_WIDTH`), scaled to the output
    width; when the presenter needs more width than a 9:16 frame gives, the room left above
    and below is filled with the background (never black bars over the picture). A source
    narrower than the output's aspect is cut at the bottom, keeping the face.
    """
    w_out, h_out = preset.width, preset.height
    if preset.fit == "pad":
        f = min(w_out / width, h_out / height)
        w, h = min(_even(width * f), w_out), min(_even(height * f), h_out)
        return Placement(None, w, h, (w_out - w) // 2, (h_out - h) // 2)
    aspect = w_out / h_out
    if aspect * height <= width:
        wh = height
        ww = min(width, max(aspect * height, PRESENTER_WIDTH * width))
        ww = min(_even(ww), width // 2 * 2)
        wx = max(0, min((width - ww) // 2, width - ww)) // 2 * 2
        wy = 0
    else:
        ww = width // 2 * 2
        wh = min(_even(width / aspect), height // 2 * 2)
        wx, wy = 0, ((height - wh) // 3) // 2 * 2
    window = None if (ww, wh) == (width, height) else (wx, wy, ww, wh)
    f = min(w_out / ww, h_out / wh)
    w, h = min(_even(ww * f), w_out), min(_even(wh * f), h_out)
    return Placement(window, w, h, (w_out - w) // 2 // 2 * 2, (h_out - h) // 2 // 2 * 2)


@dataclass(frozen=True)
class ConformKey:
    """The shareable start of a part's conform chain: frame rate, window and scaled size.

    Attributes:
        part: Index of the part in the pass's inputs.
        fps: Output frame rate.
        window: Crop of the source before scaling (``None``: all of it).
        width: Scaled width.
        height: Scaled height.
        alpha: Whether the chain keeps the source's alpha.
    """

    part: int
    fps: float
    window: tuple[int, int, int, int] | None
    width: int
    height: int
    alpha: bool = False


def conform_key(
    preset: Preset, part_index: int, width: int, height: int, *, alpha: bool = False
) -> ConformKey:
    """Where a ``width`` x ``height`` part is cropped and scaled to before it is placed."""
    place = placement(preset, width, height)
    return ConformKey(part_index, preset.fps, place.window, place.width, place.height, alpha)


def base_conform(stream: Any, key: ConformKey) -> Any:
    """The start shared by every key of one part: the frame rate (and the alpha plane kept)."""
    v = stream.filter("fps", key.fps)
    return v.filter("format", "yuva444p") if key.alpha else v


def start_conform(base: Any, key: ConformKey) -> Any:
    """The shareable part of the chain after :func:`base_conform`: window and scale."""
    v = base
    if key.window is not None:
        x, y, w, h = key.window
        v = v.filter("crop", w, h, x, y)
    return v.filter("scale", key.width, key.height)


def finish_conform(
    preset: Preset,
    scaled: Any,
    duration_s: float,
    *,
    source: tuple[int, int] | None = None,
    fill: str | None = None,
    alpha: str | None = None,
) -> Any:
    """Place a scaled part in the preset's frame and cut it to whole frames.

    Args:
        preset: The output's preset.
        scaled: The part after :func:`start_conform`.
        duration_s: Its frame-aligned duration.
        source: The part's picture size (for the placement; ``None``: already the frame's).
        fill: Colour of any room left around the picture with ``fit: crop`` (the script's
            background; ``None``: ``pad_color``).
        alpha: ``keep`` (the output carries the part's alpha), ``flatten`` (composite it onto
            ``pad_color``) or ``None`` (no alpha).
    """
    p = preset
    place = placement(p, *(source or (p.width, p.height)))
    color = p.pad_color if p.fit == "pad" or fill is None else fill
    if alpha != "keep" and len(color) == 9:
        color = color[:7]
    v = scaled
    if (place.width, place.height) != (p.width, p.height):
        v = v.filter("pad", p.width, p.height, place.x, place.y, color=color)
    v = (
        v.filter("setsar", 1)
        .filter("tpad", stop_mode="clone", stop_duration=1)
        .filter("trim", duration=f"{duration_s:.6f}")
        .filter("setpts", "PTS-STARTPTS")
    )
    if alpha == "flatten":
        under = ffmpeg.input(
            f"color=c={p.pad_color[:7]}:s={p.width}x{p.height}:r={p.fps:g}", f="lavfi"
        ).video
        v = ffmpeg.overlay(under, v, shortest=1, format="auto")
    return v.filter("format", "yuva444p" if alpha == "keep" else "yuv420p")


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


def video_codec_args(preset: Preset, threads: int | None, *, alpha: bool = False) -> dict[str, Any]:
    """The encoder options of ``preset`` (``ffmpeg-python`` output keywords).

    ``alpha`` keeps a transparent picture transparent: ``yuva420p`` VP9 (``auto-alt-ref`` off,
    which alpha needs) or ProRes 4444 with alpha.
    """
    p = preset
    if p.video_codec == "prores":
        args: dict[str, Any] = {
            "vcodec": VIDEO_ENCODERS["prores"],
            "profile:v": 4,  # 4444
            "vendor": "apl0",
            "pix_fmt": "yuva444p10le" if alpha else "yuv444p10le",
        }
        if threads:
            args["threads"] = threads
        return args
    args = {"vcodec": VIDEO_ENCODERS[p.video_codec], "pix_fmt": "yuv420p"}
    args["g"] = max(1, round(p.fps * 2))
    if alpha and p.video_codec == "vp9":
        args["pix_fmt"] = "yuva420p"
        args["auto-alt-ref"] = 0
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
