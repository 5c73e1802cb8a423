"""Finished outputs: scenes + intro/outro + music + logo + subtitles -> one file per preset.

Per output, :func:`render_output` runs at most three ffmpeg processes:

1. loudness pass 1 (audio only): the exact audio graph of the output (conformed parts, music
   looped and ducked) into ``ebur128`` (see :mod:`avatarpipe.media.loudness` for why not
   ``loudnorm``'s own meter);
2. ONE pass that does everything else, built with ``ffmpeg-python``: conform every part (fps,
   scale + pad/crop to the output size, pixel format, resample), concatenate, loop and duck the
   music (``sidechaincompress``), ``loudnorm`` (linear) with the measured values, logo overlay,
   burned (styled ASS) or soft subtitles, encode; the poster and contact sheet are extra outputs
   of the same pass (``split``), so the video is decoded and filtered once;
3. a verification read of the temporary output (every packet demuxed, audio measured with
   ``ebur128``), plus a container probe.

Only then are the files renamed to their final names. On any failure every temporary file is
removed, so nothing half-written ever carries a final name (and no debris stays behind).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ffmpeg

from avatarpipe.errors import MediaError
from avatarpipe.hashing import file_digest
from avatarpipe.media.ffmpeg import MediaInfo, probe, run_ffmpeg
from avatarpipe.media.images import sheet_frame_step, temp_name
from avatarpipe.media.loudness import Loudness, parse_ebur128
from avatarpipe.media.presets import Preset
from avatarpipe.media.subtitles import (
    Cue,
    cues_from_word_boundaries,
    join_scene_cues,
    to_ass,
    to_srt,
    to_vtt,
)

__all__ = [
    "OutputResult",
    "PartInfo",
    "PostJob",
    "concat_copy",
    "default_parallelism",
    "join_scenes",
    "process_outputs",
    "render_output",
]

_DAMAGE_MARKERS = (
    "partial file",
    "Invalid data found",
    "moov atom not found",
    "error reading header",
)
_TIME_RE = re.compile(r"time=(?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)")
_VIDEO_ENCODERS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9"}
_AUDIO_ENCODERS = {"aac": "aac", "opus": "libopus"}
_MUXERS = {"mp4": "mp4", "mov": "mov", "mkv": "matroska", "webm": "webm"}
_SOFT_SUB_CODECS = {"mp4": "mov_text", "mov": "mov_text", "mkv": "srt", "webm": "webvtt"}


@dataclass
class PostJob:
    """One finished output to make.

    Attributes:
        scenes: The service's videos, in order (each needs a video and an audio stream).
        preset: What the output looks like (see :func:`avatarpipe.media.presets.load_preset`).
        out_path: The final file name; its directory must exist.
        intro: A clip played before the scenes (any size/rate; conformed).
        outro: A clip played after the scenes (any size/rate; conformed).
        music: Background music, looped under the whole output and ducked under speech.
        logo: An image overlaid per ``preset.logo``.
        scene_cues: One cue list per scene, each on its scene's own timeline (e.g. from
            :func:`~avatarpipe.media.subtitles.cues_from_word_boundaries` or
            :func:`~avatarpipe.media.subtitles.parse_subtitles`); placed by the real scene starts.
        scene_words: Instead of ``scene_cues``: one word-boundary list per scene (the Azure
            ``[{"Text", "AudioOffset", "Duration"}]`` shape, ms); cues are built with the
            preset's ``subtitle_style.max_chars``/``max_lines``.
        timeout_s: Seconds each ffmpeg process may run.
        threads: Encoder threads (``None``: ffmpeg's default, all cores).
    """

    scenes: Sequence[Path]
    preset: Preset
    out_path: Path
    intro: Path | None = None
    outro: Path | None = None
    music: Path | None = None
    logo: Path | None = None
    scene_cues: Sequence[Sequence[Cue]] | None = None
    scene_words: Sequence[Sequence[Mapping[str, Any]]] | None = None
    timeout_s: float | None = 3600.0
    threads: int | None = None


@dataclass(frozen=True)
class PartInfo:
    """One input part of an output as it was used.

    Attributes:
        role: ``intro``, ``scene 1``... or ``outro``.
        path: The file.
        duration_s: Duration used (frame-aligned to the output rate).
        start_s: Where it starts in the output.
        has_audio: Whether it had audio (silence is used otherwise).
    """

    role: str
    path: Path
    duration_s: float
    start_s: float
    has_audio: bool


@dataclass
class OutputResult:
    """What :func:`render_output` made, for the run manifest.

    Attributes:
        path: The final video.
        preset: The preset used (with overrides applied).
        info: The probe of the final video.
        duration_s: Measured duration (every packet read).
        expected_duration_s: Sum of the parts' durations.
        parts: The parts, with where each starts.
        loudness_measured: Pass 1 ``ebur128`` values of the mix before normalisation (``None``
            when normalisation was off).
        loudness_mode: ``linear`` (one gain), ``dynamic`` (loudnorm had to compress to respect
            the true-peak ceiling or LRA), ``silent`` (nothing to normalise) or ``off``.
        loudness_after: ``ebur128`` measurement of the output's audio.
        sha256: Hex digest of the final video.
        size_bytes: Size of the final video.
        subtitle_files: Sidecar ``.srt``/``.vtt`` files (when there were cues).
        thumbnail: The poster PNG, when made.
        contact_sheet: The contact sheet PNG, when made.
        elapsed_s: Wall time of the whole render.
        cues: The cues on the output's timeline.
    """

    path: Path
    preset: Preset
    info: MediaInfo
    duration_s: float
    expected_duration_s: float
    parts: list[PartInfo]
    loudness_measured: Loudness | None
    loudness_after: Loudness | None
    loudness_mode: str
    sha256: str
    size_bytes: int
    subtitle_files: list[Path] = field(default_factory=list)
    thumbnail: Path | None = None
    contact_sheet: Path | None = None
    elapsed_s: float = 0.0
    cues: list[Cue] = field(default_factory=list)

    def to_manifest(self) -> dict[str, Any]:
        """Return a JSON-safe summary for ``manifest.json``."""
        video, audio = self.info.video, self.info.audio
        return {
            "path": str(self.path),
            "preset": self.preset.name,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "duration_s": round(self.duration_s, 3),
            "expected_duration_s": round(self.expected_duration_s, 3),
            "video": {
                "codec": video.codec if video else None,
                "width": video.width if video else None,
                "height": video.height if video else None,
                "fps": video.fps if video else None,
            },
            "audio": {
                "codec": audio.codec if audio else None,
                "sample_rate": audio.sample_rate if audio else None,
            },
            "streams": [s.kind for s in self.info.streams],
            "parts": [
                {
                    "role": p.role,
                    "path": str(p.path),
                    "start_s": round(p.start_s, 3),
                    "duration_s": round(p.duration_s, 3),
                    "has_audio": p.has_audio,
                }
                for p in self.parts
            ],  # fmt: skip
            "loudness": {
                "target_lufs": self.preset.loudness.target_lufs
                if self.preset.loudness.enabled
                else None,
                "target_true_peak_dbtp": self.preset.loudness.true_peak_dbtp,
                "mode": self.loudness_mode,
                "measured_pass1": self.loudness_measured.as_dict()
                if self.loudness_measured
                else None,
                "after": self.loudness_after.as_dict() if self.loudness_after else None,
            },
            "subtitles": [str(p) for p in self.subtitle_files],
            "thumbnail": str(self.thumbnail) if self.thumbnail else None,
            "contact_sheet": str(self.contact_sheet) if self.contact_sheet else None,
            "elapsed_s": round(self.elapsed_s, 3),
        }


@dataclass(frozen=True)
class _Part:
    role: str
    path: Path
    info: MediaInfo
    duration_s: float


def _check_file(role: str, path: Path) -> None:
    if not path.is_file():
        raise MediaError(f"{role} {path}: no such file")


def _probe_part(role: str, path: Path, fps: float) -> _Part:
    _check_file(role, path)
    try:
        info = probe(path)
    except MediaError as exc:
        raise MediaError(
            f"{role} {path}: {exc.message.split(': ', 1)[-1]}",
            returncode=exc.returncode,
            stderr_tail=exc.stderr_tail,
        ) from exc
    if info.video is None:
        kind = "audio-only file" if info.audio else "no streams"
        raise MediaError(f"{role} {path}: has no video stream ({kind}); a video is needed")
    if info.duration_s <= 0:
        raise MediaError(f"{role} {path}: has no duration (empty or truncated)")
    frames = max(1, round(info.duration_s * fps))
    return _Part(role, path, info, frames / fps)


def _collect_parts(job: PostJob) -> list[_Part]:
    if not job.scenes:
        raise MediaError(f"{job.out_path.name}: no scenes to process")
    fps = job.preset.fps
    parts: list[_Part] = []
    if job.intro is not None:
        parts.append(_probe_part("intro", Path(job.intro), fps))
    for i, scene in enumerate(job.scenes, 1):
        part = _probe_part(f"scene {i}", Path(scene), fps)
        if part.info.audio is None:
            raise MediaError(f"scene {i} {scene}: has no audio stream (speech expected)")
        parts.append(part)
    if job.outro is not None:
        parts.append(_probe_part("outro", Path(job.outro), fps))
    if job.music is not None:
        _check_file("music", Path(job.music))
        info = probe(job.music)
        if info.audio is None:
            raise MediaError(f"music {job.music}: has no audio stream")
    if job.logo is not None:
        _check_file("logo", Path(job.logo))
        if probe(job.logo).video is None:
            raise MediaError(f"logo {job.logo}: is not an image")
    for name, lists in (("cue", job.scene_cues), ("word-boundary", job.scene_words)):
        if lists is not None and len(lists) != len(job.scenes):
            raise MediaError(
                f"{job.out_path.name}: {len(lists)} {name} lists for {len(job.scenes)} scenes"
            )
    return parts


def _audio_chain(job: PostJob, parts: list[_Part], inputs: list[Any]) -> Any:
    """The output's audio before loudnorm: conformed parts concatenated, music mixed in."""
    p = job.preset
    total = sum(part.duration_s for part in parts)
    segments = []
    for part, inp in zip(parts, inputs, strict=True):
        if part.info.audio is not None:
            a = inp.audio
        else:
            a = ffmpeg.input(f"anullsrc=r={p.sample_rate}:cl=stereo", f="lavfi").audio
        a = (
            a.filter("aresample", p.sample_rate)
            .filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
            .filter("apad")
            .filter("atrim", duration=f"{part.duration_s:.6f}")
            .filter("asetpts", "PTS-STARTPTS")
        )
        segments.append(a)
    speech = segments[0] if len(segments) == 1 else ffmpeg.concat(*segments, v=0, a=1)
    if job.music is None:
        return speech
    m = p.music
    music = (
        ffmpeg.input(str(job.music), stream_loop=-1)
        .audio.filter("aresample", p.sample_rate)
        .filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
        .filter("atrim", duration=f"{total:.6f}")
        .filter("volume", f"{m.gain_db}dB")
    )
    if m.fade_out_s > 0 and total > m.fade_out_s:
        music = music.filter("afade", t="out", st=f"{total - m.fade_out_s:.3f}", d=m.fade_out_s)
    if m.duck:
        split = speech.filter_multi_output("asplit", 2)
        speech, key = split[0], split[1]
        music = ffmpeg.filter(
            [music, key],
            "sidechaincompress",
            threshold=m.threshold,
            ratio=m.ratio,
            attack=m.attack_ms,
            release=m.release_ms,
        )
    return ffmpeg.filter([speech, music], "amix", inputs=2, duration="first", normalize=0)


def _loudnorm_args(p: Preset, measured: Loudness) -> dict[str, Any]:
    ln = p.loudness
    return {
        "I": ln.target_lufs,
        "TP": ln.true_peak_dbtp,
        "LRA": ln.lra,
        "measured_I": f"{measured.integrated_lufs:.2f}",
        "measured_TP": f"{min(measured.true_peak_dbtp, 99.0):.2f}",
        # loudnorm falls back to dynamic mode when measured_LRA is exactly 0 (a steady tone).
        "measured_LRA": f"{max(measured.lra, 0.1):.2f}",
        "measured_thresh": f"{max(measured.threshold_lufs, -69.99):.2f}",
        "linear": "true",
        "print_format": "summary",
    }


def _loudness_mode(p: Preset, measured: Loudness) -> str:
    """``linear`` if one gain reaches the target under the true-peak ceiling, else ``dynamic``."""
    gain = p.loudness.target_lufs - measured.integrated_lufs
    linear = (
        measured.true_peak_dbtp + gain <= p.loudness.true_peak_dbtp
        and max(measured.lra, 0.1) <= p.loudness.lra
    )
    return "linear" if linear else "dynamic"


def _measure_pass1(job: PostJob, parts: list[_Part]) -> Loudness:
    inputs = [ffmpeg.input(str(part.path)) for part in parts]
    audio = _audio_chain(job, parts, inputs).filter("ebur128", peak="true", framelog="verbose")
    args = audio.output("-", f="null").global_args("-v", "info").get_args()
    log = run_ffmpeg(args, what=f"loudness pass 1 for {job.out_path.name}", timeout=job.timeout_s)
    _check_damage(log, parts)
    return parse_ebur128(log)


def _damaged(log: str) -> str | None:
    for line in log.splitlines():
        if any(marker in line for marker in _DAMAGE_MARKERS):
            return line.strip()
    return None


def _check_damage(log: str, parts: list[_Part]) -> None:
    """Raise naming the damaged part when ffmpeg's log reports truncated or invalid input."""
    line = _damaged(log)
    if line is None:
        return
    for part in parts:  # error path only: demux each part (no decoding) to find the culprit
        try:
            part_log = run_ffmpeg(
                ["-v", "info", "-i", str(part.path), "-map", "0", "-c", "copy", "-f", "null", "-"],
                what=f"check {part.role}",
            )
        except MediaError as exc:
            raise MediaError(f"{part.role} {part.path}: file is damaged ({exc.message})") from exc
        if _damaged(part_log):
            raise MediaError(f"{part.role} {part.path}: file is damaged or truncated")
    raise MediaError(f"an input is damaged or truncated ({line[:160]})")


def _video_part(p: Preset, inp: Any) -> Any:
    v = inp.video.filter("fps", p.fps)
    if p.fit == "crop":
        v = v.filter("scale", p.width, p.height, force_original_aspect_ratio="increase")
        v = v.filter("crop", p.width, p.height)
    else:
        v = v.filter("scale", p.width, p.height, force_original_aspect_ratio="decrease")
        v = v.filter("pad", p.width, p.height, "(ow-iw)/2", "(oh-ih)/2", color=p.pad_color)
    return v.filter("setsar", 1).filter("format", "yuv420p")


def _logo_overlay(p: Preset, video: Any, logo: Path) -> Any:
    spec = p.logo
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


def _video_codec_args(p: Preset, threads: int | None) -> dict[str, Any]:
    args: dict[str, Any] = {"vcodec": _VIDEO_ENCODERS[p.video_codec], "pix_fmt": "yuv420p"}
    gop = max(1, round(p.fps * 2))
    args["g"] = gop
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
        args["maxrate"] = f"{int(p.video_bitrate_kbps * 1.5)}k"
        args["bufsize"] = f"{p.video_bitrate_kbps * 2}k"
    else:
        crf = p.crf if p.crf is not None else (31 if p.video_codec == "vp9" else 23)
        args["crf"] = crf
        if p.video_codec == "vp9":
            args["video_bitrate"] = 0
    if threads:
        args["threads"] = threads
    return args


def _verify(tmp: Path, what: str, timeout: float | None) -> tuple[float, Loudness | None]:
    """Read every packet of ``tmp`` and measure its audio; return (duration, loudness)."""
    info = probe(tmp)
    args = ["-v", "info", "-i", str(tmp)]
    if info.audio is not None:
        args += ["-map", "0:a:0", "-af", "ebur128=peak=true:framelog=verbose"]
    if info.video is not None:
        args += ["-map", "0:v:0", "-c:v", "copy"]
    log = run_ffmpeg([*args, "-f", "null", "-"], what=f"verify {what}", timeout=timeout)
    if any(marker in log for marker in _DAMAGE_MARKERS):
        raise MediaError(f"{what}: the written file is damaged")
    times = _TIME_RE.findall(log)
    duration = info.duration_s
    if times:
        h, m, s = times[-1]
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    loud = parse_ebur128(log) if info.audio is not None else None
    return duration, loud


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def render_output(job: PostJob) -> OutputResult:
    """Make one finished output (see the module docstring for the passes).

    Args:
        job: Inputs, preset and final path.

    Returns:
        The final path with its probe, durations, loudness before/after, checksum and size,
        and the sidecar subtitles, poster and contact sheet that were written.

    Raises:
        MediaError: An input is missing, truncated or of the wrong kind (the message names the
            role and file), ffmpeg fails, or the written file fails verification. Nothing is left
            behind: temporary files are removed and no final name is created.
    """
    started = time.monotonic()
    p = job.preset
    out = Path(job.out_path)
    if not out.parent.is_dir():
        raise MediaError(f"{out}: output directory does not exist")
    if out.suffix.lower() != p.suffix:
        raise MediaError(f"{out}: preset {p.name} writes {p.suffix} files")
    parts = _collect_parts(job)

    starts: list[float] = []
    t = 0.0
    for part in parts:
        starts.append(t)
        t += part.duration_s
    total = t
    scene_idx = [i for i, part in enumerate(parts) if part.role.startswith("scene")]
    cues: list[Cue] = []
    scene_cues = job.scene_cues
    if scene_cues is None and job.scene_words is not None:
        style = p.subtitle_style
        scene_cues = [
            cues_from_word_boundaries(words, max_chars=style.max_chars, max_lines=style.max_lines)
            for words in job.scene_words
        ]
    if scene_cues is not None:
        offsets = [round(starts[i] * 1000) for i in scene_idx]
        last = scene_idx[-1]
        offsets.append(round((starts[last] + parts[last].duration_s) * 1000))
        cues = join_scene_cues(scene_cues, offsets)

    want_subs = bool(cues) and p.subtitles != "none"
    final_thumb = out.with_suffix(".poster.png") if p.thumbnail else None
    final_sheet = out.with_suffix(".sheet.png") if p.contact_sheet else None
    final_subs = [out.with_suffix(".srt"), out.with_suffix(".vtt")] if want_subs else []

    tmp_video = temp_name(out)
    tmp_thumb = temp_name(final_thumb) if final_thumb else None
    tmp_sheet = temp_name(final_sheet) if final_sheet else None
    tmp_subs = [temp_name(s) for s in final_subs]
    temps = [x for x in (tmp_video, tmp_thumb, tmp_sheet, *tmp_subs) if x is not None]

    try:
        with tempfile.TemporaryDirectory(prefix="avatarpipe-post-") as work_dir:
            measured: Loudness | None = None
            mode = "off"
            if p.loudness.enabled:
                measured = _measure_pass1(job, parts)
                mode = _loudness_mode(p, measured)
                if not math.isfinite(measured.integrated_lufs) or measured.integrated_lufs < -69:
                    mode = "silent"  # nothing to normalise

            inputs = [ffmpeg.input(str(part.path)) for part in parts]
            videos = []
            for part, inp in zip(parts, inputs, strict=True):
                v = _video_part(p, inp)
                v = (
                    v.filter("tpad", stop_mode="clone", stop_duration=1)
                    .filter("trim", duration=f"{part.duration_s:.6f}")
                    .filter("setpts", "PTS-STARTPTS")
                )
                videos.append(v)
            video = videos[0] if len(parts) == 1 else ffmpeg.concat(*videos, v=1, a=0)
            audio = _audio_chain(job, parts, inputs)
            if measured is not None and mode != "silent":
                audio = audio.filter("loudnorm", **_loudnorm_args(p, measured))
                audio = audio.filter("aresample", p.sample_rate)
            if job.logo is not None:
                video = _logo_overlay(p, video, Path(job.logo))
            if want_subs and p.subtitles == "burn":
                ass = Path(work_dir) / "subs.ass"
                style = p.subtitle_style
                ass.write_text(
                    to_ass(
                        cues, width=p.width, height=p.height, font=style.font,
                        size_pct=style.size_pct, color=style.color,
                        outline_color=style.outline_color, outline_px=style.outline_px,
                        bold=style.bold, margin_pct=style.margin_pct,
                    ),
                    encoding="utf-8",
                )  # fmt: skip
                video = video.filter("ass", str(ass))

            n_extra = int(tmp_thumb is not None) + int(tmp_sheet is not None)
            branches: list[Any] = [video]
            if n_extra:
                split = video.filter_multi_output("split", n_extra + 1)
                branches = [split[i] for i in range(n_extra + 1)]
            streams: list[Any] = [branches[0], audio]
            out_kwargs: dict[str, Any] = {
                "f": _MUXERS[p.container],
                "acodec": _AUDIO_ENCODERS[p.audio_codec],
                "audio_bitrate": f"{p.audio_bitrate_kbps}k",
                "ar": p.sample_rate,
                "ac": 2,
                **_video_codec_args(p, job.threads),
            }
            if want_subs and p.subtitles == "soft":
                srt = Path(work_dir) / "subs.srt"
                srt.write_text(to_srt(cues), encoding="utf-8")
                streams.append(ffmpeg.input(str(srt))["s"])
                out_kwargs["scodec"] = _SOFT_SUB_CODECS[p.container]
            if p.faststart and p.container in ("mp4", "mov"):
                out_kwargs["movflags"] = "+faststart"
            outputs = [ffmpeg.output(*streams, str(tmp_video), **out_kwargs)]
            b = 1
            if tmp_thumb is not None:
                at = p.thumbnail_at_s if p.thumbnail_at_s is not None else total * 0.1
                at = max(0.0, min(at, total - 1.0 / p.fps))
                thumb = (
                    branches[b].filter("trim", start=f"{at:.3f}").filter("setpts", "PTS-STARTPTS")
                )
                outputs.append(
                    ffmpeg.output(thumb, str(tmp_thumb), vframes=1, f="image2", update=1)
                )
                b += 1
            if tmp_sheet is not None:
                cols, rows = p.contact_sheet_cols, p.contact_sheet_rows
                step = sheet_frame_step(round(total * p.fps), cols, rows)
                tile_w = max(2, min(480, p.width // cols) // 2 * 2)
                sheet = (
                    branches[b]
                    .filter("framestep", step)
                    .filter("scale", tile_w, -2)
                    .filter("tile", f"{cols}x{rows}")
                )
                outputs.append(
                    ffmpeg.output(sheet, str(tmp_sheet), vframes=1, f="image2", update=1)
                )
            args = ffmpeg.merge_outputs(*outputs).global_args("-v", "info").overwrite_output()
            log = run_ffmpeg(args.get_args(), what=f"render {out.name}", timeout=job.timeout_s)
            _check_damage(log, parts)

        duration, loud_after = _verify(tmp_video, out.name, job.timeout_s)
        tolerance = max(2.0 / p.fps, 0.1)
        if abs(duration - total) > tolerance:
            raise MediaError(
                f"{out.name}: rendered {duration:.3f} s but the parts sum to {total:.3f} s"
            )
        for tmp in (tmp_thumb, tmp_sheet):
            if tmp is not None and (not tmp.is_file() or tmp.stat().st_size == 0):
                raise MediaError(f"{out.name}: ffmpeg did not write {tmp.name}")
        for tmp_sub, final_sub in zip(tmp_subs, final_subs, strict=True):
            text = to_srt(cues) if final_sub.suffix == ".srt" else to_vtt(cues)
            tmp_sub.write_text(text, encoding="utf-8")
        info = probe(tmp_video)
        digest = file_digest(tmp_video)
        size = tmp_video.stat().st_size
        os.replace(tmp_video, out)
        if tmp_thumb is not None and final_thumb is not None:
            os.replace(tmp_thumb, final_thumb)
        if tmp_sheet is not None and final_sheet is not None:
            os.replace(tmp_sheet, final_sheet)
        for tmp_sub, final_sub in zip(tmp_subs, final_subs, strict=True):
            os.replace(tmp_sub, final_sub)
    except BaseException:
        _remove(temps)
        raise

    return OutputResult(
        path=out,
        preset=p,
        info=MediaInfo(out, info.format_name, info.duration_s, info.bitrate_kbps, info.streams),
        duration_s=duration,
        expected_duration_s=total,
        parts=[
            PartInfo(part.role, part.path, part.duration_s, start, part.info.audio is not None)
            for part, start in zip(parts, starts, strict=True)
        ],
        loudness_measured=measured,
        loudness_mode=mode,
        loudness_after=loud_after,
        sha256=digest,
        size_bytes=size,
        subtitle_files=final_subs,
        thumbnail=final_thumb,
        contact_sheet=final_sheet,
        elapsed_s=time.monotonic() - started,
        cues=cues,
    )


def _probe_scenes(out: Path, paths: list[Path]) -> list[MediaInfo]:
    if not paths:
        raise MediaError(f"{out}: no scenes to join")
    infos = []
    for i, path in enumerate(paths, 1):
        _check_file(f"scene {i}", path)
        infos.append(probe(path))
    return infos


def _shape(info: MediaInfo) -> tuple[Any, ...]:
    v, a = info.video, info.audio
    return (
        (v.codec, v.width, v.height, v.fps, v.pix_fmt) if v else None,
        (a.codec, a.sample_rate, a.channels) if a else None,
    )


def _copy_mismatch(paths: list[Path], infos: list[MediaInfo]) -> str | None:
    """Why the scenes cannot be joined by stream copy, or ``None`` when they can."""
    first = _shape(infos[0])
    for i, info in enumerate(infos[1:], 2):
        if _shape(info) != first:
            return (
                f"scene {i} {paths[i - 1]}: codecs/parameters differ from scene 1 "
                f"({_shape(info)} vs {first}); stream copy is impossible, re-encode instead"
            )
    return None


def join_scenes(scenes: Sequence[str | Path], out_path: str | Path, preset: Preset) -> MediaInfo:
    """Join scenes: by stream copy when their codecs and parameters match, else one re-encode.

    Args:
        scenes: The scene videos, in order.
        out_path: The final file.
        preset: Used for the re-encode when stream copy is impossible (size, fps, codecs).

    Returns:
        The probe of the joined file.

    Raises:
        MediaError: A scene is missing or broken, or ffmpeg fails.
    """
    out = Path(out_path)
    paths = [Path(s) for s in scenes]
    infos = _probe_scenes(out, paths)
    if _copy_mismatch(paths, infos) is None and out.suffix.lower() == paths[0].suffix.lower():
        return concat_copy(paths, out)
    lean = preset.model_copy(
        update={"thumbnail": False, "contact_sheet": False, "subtitles": "none"}
    )
    return render_output(PostJob(scenes=paths, preset=lean, out_path=out)).info


def concat_copy(scenes: Sequence[str | Path], out_path: str | Path) -> MediaInfo:
    """Join scenes without re-encoding (concat demuxer, ``-c copy``): the "no preset" case.

    Args:
        scenes: Videos that share codecs, size, frame rate and audio parameters.
        out_path: The final file (written under a temporary name, verified, then renamed).

    Returns:
        The probe of the joined file.

    Raises:
        MediaError: A scene is missing or broken, the scenes do not match (use
            :func:`render_output` to re-encode), or ffmpeg fails.
    """
    out = Path(out_path)
    paths = [Path(s) for s in scenes]
    infos = _probe_scenes(out, paths)
    mismatch = _copy_mismatch(paths, infos)
    if mismatch:
        raise MediaError(mismatch)
    tmp = temp_name(out)
    try:
        with tempfile.TemporaryDirectory(prefix="avatarpipe-concat-") as work_dir:
            listing = Path(work_dir) / "list.txt"
            listing.write_text(
                "".join("file '" + str(p.resolve()).replace("'", "'\\''") + "'\n" for p in paths),
                encoding="utf-8",
            )
            extra = {"movflags": "+faststart"} if out.suffix.lower() in (".mp4", ".mov") else {}
            args = (
                ffmpeg.input(str(listing), f="concat", safe=0)
                .output(str(tmp), c="copy", map="0", **extra)
                # keep the demuxer's timestamps: without it the AAC priming of each scene shifts
                # the video start and the joined file runs ~1 audio frame per scene too long
                .global_args("-copyts")
                .overwrite_output()
                .get_args()
            )
            log = run_ffmpeg(args, what=f"join scenes into {out.name}")
            if any(marker in log for marker in _DAMAGE_MARKERS):
                raise MediaError(f"{out.name}: a scene is damaged or truncated")
        total = sum(info.duration_s for info in infos)
        duration, _ = _verify(tmp, out.name, None)
        if abs(duration - total) > 0.2:
            raise MediaError(f"{out.name}: joined {duration:.3f} s but scenes sum to {total:.3f} s")
        info = probe(tmp)
        os.replace(tmp, out)
    except BaseException:
        _remove([tmp])
        raise
    return MediaInfo(out, info.format_name, info.duration_s, info.bitrate_kbps, info.streams)


def default_parallelism(n_jobs: int) -> int:
    """How many outputs to render at once on this machine.

    Each ffmpeg encode is itself multi-threaded (x264 runs ~1.5 threads per core), but every
    render also has serial stretches (loudness pass 1, ``loudnorm``, muxing, verification).
    Two renders per four cores keeps the cores busy without thrashing memory and caches, and at
    least two run at once so one's serial stretch overlaps the other's encode.

    Args:
        n_jobs: Number of outputs waiting.

    Returns:
        ``min(n_jobs, max(2, cpu_count // 2))``, at least 1.
    """
    cpus = os.cpu_count() or 1
    return max(1, min(n_jobs, max(2, cpus // 2)))


def process_outputs(jobs: Sequence[PostJob], max_parallel: int | None = None) -> list[OutputResult]:
    """Render several outputs at once, bounded by :func:`default_parallelism`.

    Encoder threads are split between the concurrent renders (``cpu_count // parallel``) unless
    a job sets ``threads`` itself. Every job runs to completion even when another fails.

    Args:
        jobs: The outputs to make (distinct ``out_path`` values).
        max_parallel: Override the bound.

    Returns:
        Results in the order of ``jobs``.

    Raises:
        MediaError: Two jobs share an output path, or a job failed (the first failure is raised
            after all jobs finished; the failed job left nothing behind, the others' files stay).
    """
    outs = [Path(j.out_path).resolve() for j in jobs]
    if len(set(outs)) != len(outs):
        raise MediaError("two post-processing jobs write the same output path")
    if not jobs:
        return []
    parallel = max(1, max_parallel or default_parallelism(len(jobs)))
    threads = max(1, (os.cpu_count() or 1) // parallel)
    jobs = [job if job.threads else dataclasses.replace(job, threads=threads) for job in jobs]
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="postprocess") as pool:
        futures = [pool.submit(render_output, job) for job in jobs]
        errors = [f.exception() for f in futures]
    for err in errors:
        if err is not None:
            raise err
    return [f.result() for f in futures]
