"""Still images from a video: a poster thumbnail and a contact sheet (one ffmpeg call each)."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import ffmpeg

from avatarpipe.errors import MediaError
from avatarpipe.media.ffmpeg import probe, run_ffmpeg

__all__ = ["contact_sheet", "sheet_frame_step", "temp_name", "thumbnail"]


def temp_name(final: Path) -> Path:
    """Return a hidden temporary name beside ``final`` that keeps its suffix.

    Args:
        final: The path the file will finally carry.

    Returns:
        ``<dir>/.<stem>.part-<random><suffix>``.
    """
    return final.with_name(f".{final.stem}.part-{uuid.uuid4().hex[:10]}{final.suffix}")


def _finish(tmp: Path, final: Path, what: str) -> Path:
    if not tmp.is_file() or tmp.stat().st_size == 0:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise MediaError(f"{what}: ffmpeg wrote no image")
    os.replace(tmp, final)
    return final


def sheet_frame_step(total_frames: int, cols: int, rows: int) -> int:
    """Return how many frames apart contact-sheet tiles are taken.

    Args:
        total_frames: Frames in the video.
        cols: Columns of the sheet.
        rows: Rows of the sheet.

    Returns:
        A step of at least 1.
    """
    return max(1, total_frames // (cols * rows))


def thumbnail(video: str | Path, out_png: str | Path, at_s: float | None = None) -> Path:
    """Write one frame of ``video`` as a PNG (written under a temporary name, then renamed).

    Args:
        video: The video.
        out_png: Where the PNG goes.
        at_s: Time of the frame; default 10 % into the video.

    Returns:
        ``out_png``.

    Raises:
        MediaError: The video is missing, has no video stream, or ffmpeg fails.
    """
    src, final = Path(video), Path(out_png)
    info = probe(src)
    if info.video is None:
        raise MediaError(f"{src}: has no video stream for a thumbnail")
    t = at_s if at_s is not None else info.duration_s * 0.1
    t = max(0.0, min(t, max(0.0, info.duration_s - 0.05)))
    tmp = temp_name(final)
    args = (
        ffmpeg.input(str(src), ss=f"{t:.3f}")
        .video.output(str(tmp), vframes=1, f="image2", update=1)
        .overwrite_output()
        .get_args()
    )
    try:
        run_ffmpeg(args, what=f"thumbnail of {src.name}")
        return _finish(tmp, final, f"thumbnail of {src.name}")
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def contact_sheet(
    video: str | Path, out_png: str | Path, cols: int = 4, rows: int = 3, tile_width: int = 320
) -> Path:
    """Write a ``cols`` x ``rows`` grid of evenly spaced frames as one PNG.

    Args:
        video: The video.
        out_png: Where the PNG goes.
        cols: Columns.
        rows: Rows.
        tile_width: Width of each tile in pixels.

    Returns:
        ``out_png``.

    Raises:
        MediaError: The video is missing, has no video stream, or ffmpeg fails.
    """
    src, final = Path(video), Path(out_png)
    info = probe(src)
    if info.video is None:
        raise MediaError(f"{src}: has no video stream for a contact sheet")
    fps = info.video.fps or 25.0
    step = sheet_frame_step(round(info.duration_s * fps), cols, rows)
    tmp = temp_name(final)
    args = (
        ffmpeg.input(str(src))
        .video.filter("framestep", step)
        .filter("scale", tile_width, -2)
        .filter("tile", f"{cols}x{rows}")
        .output(str(tmp), vframes=1, f="image2", update=1)
        .overwrite_output()
        .get_args()
    )
    try:
        run_ffmpeg(args, what=f"contact sheet of {src.name}")
        return _finish(tmp, final, f"contact sheet of {src.name}")
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
