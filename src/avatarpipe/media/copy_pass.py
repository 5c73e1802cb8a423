"""Copy what does not change: when may the service's picture go out as it came in.

The service already delivers the picture most presets want (1920x1080, 25 fps, H.264). When
nothing is drawn on it (no logo, no burned captions, no reframing) and its stream parameters fit
the preset (codec, size, frame rate, pixel format, bitrate under the preset's VBV cap), the video
stream is copied packet for packet and only the audio is processed: decoding and re-encoding
every frame would cost ~0.9 s of CPU per second of video and lose quality for nothing.

Several parts are joined by stream copy (the concat demuxer, each part cut at its frame-aligned
duration) when their encoder headers (H.264/HEVC parameter sets) are identical, which is the
case for scenes of one service. An intro or outro in another shape is conformed once to the
scenes' parameters and kept in the job's ``cache_dir`` (keyed by its content and the scenes'
headers), so later runs join it by copy as well; when even the conformed clip's headers differ
(the service's encoder settings are not ours), the output is re-encoded and the reason recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from avatarpipe.hashing import file_digest
from avatarpipe.media.ffmpeg import StreamInfo, probe, run_ffmpeg
from avatarpipe.media.images import temp_name
from avatarpipe.media.parts import Part
from avatarpipe.media.presets import Preset
from avatarpipe.media.video_pass import MAXRATE_FACTOR, VIDEO_ENCODERS

__all__ = ["CopySource", "copy_source", "parameter_sets", "picture_blocker"]

_ANNEXB_BSF = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}


def picture_blocker(preset: Preset, *, logo: bool, burns: bool) -> str | None:
    """Why the preset itself changes the picture (``None``: it leaves it as it is)."""
    if preset.video_copy == "never":
        return "the preset sets video_copy: never"
    if logo:
        return "a logo is drawn on the picture"
    if burns:
        return "captions are burned into the picture"
    return None


def _shape_mismatch(preset: Preset, role: str, v: StreamInfo) -> str | None:
    """Why stream ``v`` is not what ``preset`` delivers, or ``None`` when it is."""
    if v.codec != preset.video_codec:
        return f"{role} is {v.codec}, the preset delivers {preset.video_codec}"
    if (v.width, v.height) != (preset.width, preset.height):
        return f"{role} is {v.width}x{v.height}, the preset delivers {preset.width}x{preset.height}"
    if v.fps is None or abs(v.fps - preset.fps) > 1e-3:
        return f"{role} runs at {v.fps} fps, the preset delivers {preset.fps:g}"
    if v.pix_fmt != "yuv420p" or v.alpha:
        return f"{role} is {v.pix_fmt}, the preset delivers yuv420p"
    cap = preset.video_bitrate_kbps
    if cap is not None and v.bitrate_kbps is not None and v.bitrate_kbps > cap * MAXRATE_FACTOR:
        return (
            f"{role} runs at {v.bitrate_kbps} kb/s, over the preset's cap of "
            f"{int(cap * MAXRATE_FACTOR)} kb/s"
        )
    return None


def _first_keyframe(path: Path, codec: str) -> bytes:
    """The first keyframe of ``path`` as an Annex B elementary stream (headers in-band)."""
    with tempfile.TemporaryDirectory(prefix="avatarpipe-ps-") as tmp:
        raw = Path(tmp) / "first.es"
        run_ffmpeg(
            ["-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
             "-bsf:v", _ANNEXB_BSF[codec], "-frames:v", "1", "-f", codec, str(raw)],
            what=f"read the encoder headers of {path.name}",
        )  # fmt: skip
        return raw.read_bytes()


def parameter_sets(path: Path, codec: str) -> bytes:
    """The first keyframe's parameter sets (SPS/PPS, and VPS for HEVC), concatenated.

    Two streams with the same parameter sets decode correctly when joined by stream copy.

    Raises:
        MediaError: ffmpeg cannot read the file.
    """
    wanted = {7, 8} if codec == "h264" else {32, 33, 34}
    sets = []
    for nal in _first_keyframe(path, codec).split(b"\x00\x00\x01"):
        nal = nal.rstrip(b"\x00")
        if not nal:
            continue
        kind = nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F
        if kind in wanted:
            sets.append(nal)
    return b"".join(sets)


# x264's speed presets by their subpixel-refinement level. x264 writes its options into an SEI
# of the first keyframe; conforming with the scenes' preset and rate control gives identical
# parameter sets (the PPS holds the initial QP, which depends on the rate control).
_X264_SPEED_BY_SUBME = {
    0: "ultrafast", 1: "superfast", 2: "veryfast", 4: "faster",
    6: "fast", 7: "medium", 8: "slow", 9: "slower",
}  # fmt: skip
_X264_OPTIONS_RE = re.compile(rb"x264 - core .*? options: ([^\x00\x80]*)", re.DOTALL)


def _encoder_args(path: Path, codec: str, bitrate_kbps: int | None) -> list[str]:
    """Encoder options that reproduce how ``path``'s picture was encoded (as far as known)."""
    if codec != "h264":
        return ["-preset", "ultrafast", "-b:v", f"{bitrate_kbps or 2000}k"]
    m = _X264_OPTIONS_RE.search(_first_keyframe(path, codec))
    opts = dict(
        item.split("=", 1)
        for item in (m[1].decode("ascii", "replace").split() if m else [])
        if "=" in item
    )
    speed = _X264_SPEED_BY_SUBME.get(int(opts.get("subme", "2")), "veryfast")
    if opts.get("rc") == "crf" and "crf" in opts:
        return ["-preset", speed, "-crf", opts["crf"]]
    rate = opts.get("bitrate") or str(bitrate_kbps or 2000)
    return ["-preset", speed, "-b:v", f"{rate}k"]


_RANGES = {"tv": "tv", "pc": "pc"}


def _color_params(color: str | None) -> str:
    """A ``setparams`` filter giving a picture the colour description ``color`` (as probed).

    The colour description is part of the H.264 sequence header, so a conformed clip must carry
    exactly the scenes' (none, when they have none) for the headers to match.
    """
    rng, space, primaries, trc = "unknown", "unknown", "unknown", "unknown"
    for token in (t.strip() for t in (color or "").split(",")):
        if token in _RANGES:
            rng = _RANGES[token]
        elif "/" in token:
            space, primaries, trc = (token.split("/") + ["unknown"] * 3)[:3]
        elif token.startswith(("bt", "smpte")):
            space = primaries = trc = token
    return f"setparams=range={rng}:color_primaries={primaries}:color_trc={trc}:colorspace={space}"


def _conformed(
    part: Part, ref: Part, ref_sets: bytes, cache_dir: Path, timeout: float | None
) -> Path:
    """``part``'s picture re-encoded in ``ref``'s stream parameters, from the cache when there."""
    v = ref.info.video
    assert v is not None and v.width and v.height and v.fps
    key = hashlib.sha256(
        file_digest(part.path).encode() + ref_sets + f"{v.width}x{v.height}@{v.fps}".encode()
    ).hexdigest()[:24]
    cached = cache_dir / f"{key}{ref.path.suffix}"
    if cached.is_file():
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(cached)
    args = [
        "-v", "error", "-y", "-i", str(part.path), "-map", "0:v:0", "-an", "-sn",
        "-vf", f"fps={v.fps},scale={v.width}:{v.height}:force_original_aspect_ratio=decrease,"
        f"pad={v.width}:{v.height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p,"
        + _color_params(v.color),
        "-c:v", VIDEO_ENCODERS[v.codec], *_encoder_args(ref.path, v.codec, v.bitrate_kbps),
        "-g", str(round(v.fps * 2)), "-t", f"{part.duration_s:.6f}",
    ]  # fmt: skip
    if v.codec == "hevc":
        args += ["-x265-params", "log-level=error", "-tag:v", "hvc1"]
    try:
        run_ffmpeg([*args, str(tmp)], what=f"conform {part.role} {part.path.name}", timeout=timeout)
        os.replace(tmp, cached)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return cached


class CopySource:
    """The picture of a copied output: one file, or the parts joined by the concat demuxer.

    Attributes:
        path: The file ffmpeg reads (a scene, or a concat list).
        concat: Whether ``path`` is a concat list (read with ``-f concat -safe 0``).
        width: Picture width.
    """

    def __init__(self, path: Path, *, concat: bool, width: int) -> None:
        self.path = path
        self.concat = concat
        self.width = width

    def input_kwargs(self) -> dict[str, object]:
        """The input options that read this source."""
        # auto_convert=0: the parts' packets go out as they are (the demuxer would otherwise
        # rewrite H.264 to Annex B with the headers repeated in every keyframe)
        return {"f": "concat", "safe": 0, "auto_convert": 0} if self.concat else {}


def copy_source(
    preset: Preset,
    parts: Sequence[Part],
    work_dir: Path,
    *,
    cache_dir: Path | None,
    timeout: float | None,
) -> CopySource | str:
    """The copied picture of an output, or the reason it must be re-encoded.

    Args:
        preset: The output's preset (already cleared by :func:`picture_blocker`).
        parts: The output's parts.
        work_dir: A temporary folder for the concat list (and the conform cache when
            ``cache_dir`` is ``None``).
        cache_dir: Where conformed intros/outros are kept between runs.
        timeout: Seconds each ffmpeg process may run.

    Returns:
        A :class:`CopySource`, or a sentence saying why the picture cannot be copied.

    Raises:
        MediaError: ffmpeg cannot read a part or conform an intro/outro.
    """
    scenes = [p for p in parts if p.role.startswith("scene")]
    ref = scenes[0]
    for part in scenes:
        assert part.info.video is not None
        why = _shape_mismatch(preset, part.role, part.info.video)
        if why:
            return why
    if len(parts) == 1:
        return CopySource(ref.path, concat=False, width=preset.width)
    codec = preset.video_codec
    if codec not in _ANNEXB_BSF:
        return f"joining {codec} parts by stream copy is not supported"
    ref_sets = parameter_sets(ref.path, codec)
    sources: list[Path] = []
    for part in parts:
        path = part.path
        assert part.info.video is not None
        if not part.role.startswith("scene") and _shape_mismatch(
            preset, part.role, part.info.video
        ):
            path = _conformed(part, ref, ref_sets, cache_dir or work_dir / "conformed", timeout)
            conformed = probe(path).video
            if conformed is None or _shape_mismatch(preset, part.role, conformed):
                return f"{part.role} could not be conformed to the scenes' parameters"
        if path != ref.path and parameter_sets(path, codec) != ref_sets:
            return f"{part.role}'s encoder headers differ from scene 1's (no stream-copy join)"
        sources.append(path)
    listing = work_dir / "copy-parts.txt"
    lines = ["ffconcat version 1.0\n"]
    for path, part in zip(sources, parts, strict=True):
        quoted = str(path.resolve()).replace("'", "'\\''")
        lines.append(f"file '{quoted}'\nduration {part.duration_s:.6f}\n")
    listing.write_text("".join(lines), encoding="utf-8")
    return CopySource(listing, concat=True, width=preset.width)
