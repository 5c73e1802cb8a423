"""The one ffmpeg process that writes every output of a script (all its variants) at once.

Each input is demuxed and decoded once, whatever the number of outputs: ffmpeg feeds one
decoded stream to every filter that reads it. Per output:

* a **copied** picture is mapped straight from its source (``-c:v copy``); its poster is one
  frame decoded after an input seek and its contact sheet comes from a keyframes-only decode
  (``-skip_frame nokey``), so the copied output never decodes the whole picture;
* a **re-encoded** picture is conformed (frame rate and scale shared between outputs that scale a
  part to the same size, then pad or crop), overlaid, captioned, then ``split`` into the encoder,
  the poster and the contact sheet;
* the **audio** is built once per distinct audio setting (see
  :class:`~avatarpipe.media.audio_pass.AudioKey`) and ``asplit`` between the outputs sharing it;
  each output has its own audio encoder (ffmpeg maps a filter output to one encoder only).

The outputs of several scripts are separate processes (their inputs differ), run side by side
by :func:`~avatarpipe.media.postprocess.process_outputs`.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ffmpeg

from avatarpipe.media.audio_pass import AudioKey, LoudnessPlan, audio_chain
from avatarpipe.media.copy_pass import CopySource
from avatarpipe.media.ffmpeg import run_ffmpeg
from avatarpipe.media.job import PostJob
from avatarpipe.media.parts import Part, check_damage
from avatarpipe.media.presets import Preset
from avatarpipe.media.subtitles import Cue, to_ass, to_srt
from avatarpipe.media.video_pass import (
    ConformKey,
    conform_key,
    finish_conform,
    keyframe_sheet_branch,
    logo_overlay,
    poster_at,
    poster_branch,
    sheet_branch,
    start_conform,
    video_codec_args,
)

__all__ = ["OutputPlan", "run_pass"]

_AUDIO_ENCODERS = {"aac": "aac", "opus": "libopus"}
_MUXERS = {"mp4": "mp4", "mov": "mov", "mkv": "matroska", "webm": "webm"}
_SOFT_SUB_CODECS = {"mp4": "mov_text", "mov": "mov_text", "mkv": "srt", "webm": "webvtt"}


@dataclass
class OutputPlan:
    """Everything decided about one output before the pass runs.

    Attributes:
        job: The job.
        parts: Its parts (durations aligned to its frame rate).
        starts: Where each part starts.
        total_s: Its expected duration.
        cues: Cues on its timeline.
        soft_subs: Whether a subtitle track is muxed.
        burn: Whether captions are burned in.
        loudness: How loudness is treated.
        copy: The copied picture, or ``None`` when re-encoded.
        reencode_reason: Why the picture is re-encoded (``None`` when copied).
        copy_audio: Whether the audio stream is copied too (nothing to do to it).
        finals: Final names: video, poster, sheet, sidecar subtitles.
        temps: Temporary names of the same files (``None`` where a file is not made).
    """

    job: PostJob
    parts: list[Part]
    starts: list[float]
    total_s: float
    cues: list[Cue]
    soft_subs: bool
    burn: bool
    loudness: LoudnessPlan
    copy: CopySource | None
    reencode_reason: str | None
    copy_audio: bool
    finals: dict[str, Path | None] = field(default_factory=dict)
    temps: dict[str, Path | None] = field(default_factory=dict)

    @property
    def preset(self) -> Preset:
        """The output's preset."""
        return self.job.preset

    def audio_key(self) -> tuple[Any, ...]:
        """Outputs with equal keys get the very same audio samples."""
        return (
            AudioKey.of(self.preset, self.job.music),
            tuple(p.duration_s for p in self.parts),
            self.loudness,
        )


def _branches(stream: Any, n: int, *, audio: bool = False) -> Iterator[Any]:
    """``n`` readers of one filter output (``split``/``asplit`` when more than one)."""
    if n == 1:
        return iter([stream])
    split = stream.filter_multi_output("asplit" if audio else "split", n)
    return iter([split[i] for i in range(n)])


def _reencoded_picture(
    plan: OutputPlan, inputs: Sequence[Any], scaled: dict[ConformKey, Iterator[Any]], work: Path
) -> Any:
    p = plan.preset
    videos = []
    for i, part in enumerate(plan.parts):
        v = part.info.video
        assert v is not None and v.width and v.height
        key = conform_key(p, i, v.width, v.height)
        videos.append(finish_conform(p, next(scaled[key]), part.duration_s))
    video = videos[0] if len(videos) == 1 else ffmpeg.concat(*videos, v=1, a=0)
    if plan.job.logo is not None:
        video = logo_overlay(p, video, Path(plan.job.logo))
    if plan.burn:
        style = p.subtitle_style
        ass = work / f"{id(plan)}.ass"
        ass.write_text(
            to_ass(
                plan.cues, width=p.width, height=p.height, font=style.font,
                size_pct=style.size_pct, color=style.color, outline_color=style.outline_color,
                outline_px=style.outline_px, bold=style.bold, margin_pct=style.margin_pct,
            ),
            encoding="utf-8",
        )  # fmt: skip
        video = video.filter("ass", str(ass))
    return video


def _still_outputs(plan: OutputPlan, video: Any | None) -> tuple[Any | None, list[Any]]:
    """The stills of ``plan``; returns the picture left for the encoder and the still outputs."""
    p, thumb, sheet = plan.preset, plan.temps.get("thumb"), plan.temps.get("sheet")
    outs: list[Any] = []
    still = {"vframes": 1, "f": "image2", "update": 1}
    if plan.copy is not None:
        src = plan.copy
        if thumb is not None:
            at = poster_at(p, plan.total_s)
            frame = ffmpeg.input(str(src.path), ss=f"{at:.3f}", **src.input_kwargs()).video
            outs.append(ffmpeg.output(frame, str(thumb), **still))
        if sheet is not None:
            keys = ffmpeg.input(str(src.path), skip_frame="nokey", **src.input_kwargs()).video
            tiles = keyframe_sheet_branch(p, keys, src.width, plan.total_s)
            outs.append(ffmpeg.output(tiles, str(sheet), **still))
        return video, outs
    n = 1 + int(thumb is not None) + int(sheet is not None)
    branches = _branches(video, n)
    video = next(branches)
    if thumb is not None:
        outs.append(
            ffmpeg.output(poster_branch(p, next(branches), plan.total_s), str(thumb), **still)
        )
    if sheet is not None:
        outs.append(
            ffmpeg.output(sheet_branch(p, next(branches), plan.total_s), str(sheet), **still)
        )
    return video, outs


def run_pass(
    plans: Sequence[OutputPlan], work: Path, *, timeout: float | None, threads: int | None
) -> str:
    """Write every output of ``plans`` (to their temporary names) in one ffmpeg process.

    Args:
        plans: Outputs that share the same parts (the variants of one script).
        work: A temporary folder for subtitle files and concat lists.
        timeout: Seconds the process may run.
        threads: Threads this pass may keep busy (``None``: every core). They are shared out
            between the video encoders: with two re-encoded variants on two cores, each x264
            runs one thread, and the encoders run side by side instead of each splitting
            frames between threads (frame threading costs CPU; measured ~10 %).

    Returns:
        ffmpeg's log.

    Raises:
        MediaError: ffmpeg fails or reports damaged input (naming the part).
    """
    parts = plans[0].parts
    inputs = [ffmpeg.input(str(part.path)) for part in parts]

    # video: one shared fps+scale chain per (part, rate, size), split between its readers
    readers: Counter[ConformKey] = Counter()
    for plan in plans:
        if plan.copy is None:
            for i, part in enumerate(plan.parts):
                v = part.info.video
                assert v is not None and v.width and v.height
                readers[conform_key(plan.preset, i, v.width, v.height)] += 1
    scaled = {
        key: _branches(start_conform(inputs[key.part].video, key), n) for key, n in readers.items()
    }

    # audio: one chain per distinct setting, asplit between the outputs that use it
    users: defaultdict[tuple[Any, ...], list[OutputPlan]] = defaultdict(list)
    for plan in plans:
        if not plan.copy_audio:
            users[plan.audio_key()].append(plan)
    audio_for: dict[int, Any] = {}
    for group in users.values():
        lead = group[0]
        parts_audio = [
            inp.audio if part.info.audio else None
            for part, inp in zip(lead.parts, inputs, strict=True)
        ]
        mix = audio_chain(lead.preset, lead.job.music, lead.parts, parts_audio)
        mix = lead.loudness.apply(lead.preset, mix)
        for plan, branch in zip(group, _branches(mix, len(group), audio=True), strict=True):
            audio_for[id(plan)] = branch

    encoders = sum(1 for plan in plans if plan.copy is None)
    per_encoder = max(1, (threads or os.cpu_count() or 1) // max(1, encoders))
    outputs: list[Any] = []
    for plan in plans:
        p = plan.preset
        kwargs: dict[str, Any] = {"f": _MUXERS[p.container]}
        if plan.copy is not None:
            src = plan.copy
            video = (
                inputs[0]["v:0"]
                if not src.concat
                else ffmpeg.input(str(src.path), **src.input_kwargs())["v:0"]
            )
            kwargs["vcodec"] = "copy"
        else:
            video = _reencoded_picture(plan, inputs, scaled, work)
            kwargs.update(video_codec_args(p, per_encoder if encoders > 1 else threads))
        video, stills = _still_outputs(plan, video)
        if plan.copy_audio:
            streams: list[Any] = [video, inputs[0]["a:0"]]
            kwargs["acodec"] = "copy"
        else:
            streams = [video, audio_for[id(plan)]]
            kwargs.update(
                acodec=_AUDIO_ENCODERS[p.audio_codec],
                audio_bitrate=f"{p.audio_bitrate_kbps}k",
                ar=p.sample_rate,
                ac=2,
            )
        if plan.soft_subs:
            srt = work / f"{id(plan)}.srt"
            srt.write_text(to_srt(plan.cues), encoding="utf-8")
            streams.append(ffmpeg.input(str(srt))["s"])
            kwargs["scodec"] = _SOFT_SUB_CODECS[p.container]
        if p.faststart and p.container in ("mp4", "mov"):
            kwargs["movflags"] = "+faststart"
        outputs.append(ffmpeg.output(*streams, str(plan.temps["video"]), **kwargs))
        outputs.extend(stills)
    args = ffmpeg.merge_outputs(*outputs).global_args("-v", "info").overwrite_output().get_args()
    names = ", ".join(plan.job.out_path.name for plan in plans)
    log = run_ffmpeg(args, what=f"render {names}", timeout=timeout)
    check_damage(log, list(parts))
    return log
