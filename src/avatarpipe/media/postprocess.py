"""Finished outputs: scenes + intro/outro + music + logo + subtitles -> one file per preset.

The outputs of one script (its variants: 16:9, 9:16, 1:1...) are made together by
:func:`render_outputs`, in at most three steps, each in its own module:

1. **plan** (:mod:`~avatarpipe.media.parts`, :mod:`~avatarpipe.media.copy_pass`): probe every
   part once, place the cues, and decide per output whether its picture can be *copied* (the
   service already delivers it: same codec, size, rate, bitrate within the preset's cap, nothing
   drawn on it) or must be re-encoded, and why;
2. **loudness pass 1** (:mod:`~avatarpipe.media.audio_pass`, audio only): the exact audio graph
   into ``ebur128``, once per distinct audio setting (variants share it). It must be a process
   of its own: the gain depends on the loudness of the whole mix, known only at its end;
3. **ONE render pass** (:mod:`~avatarpipe.media.render_pass`): a single ffmpeg process decodes
   each input once and writes every output (copied pictures mapped straight through,
   re-encoded ones conformed and encoded, one encoder per output), with every poster and
   contact sheet;

then a **verification read** of each written file (:mod:`~avatarpipe.media.verify`: every packet
demuxed, audio measured, container probed). Only then are the files renamed to their final
names. On any failure every temporary file of the pass is removed, so nothing half-written ever
carries a final name (and no debris stays behind).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ffmpeg

from avatarpipe.errors import MediaError
from avatarpipe.hashing import file_digest
from avatarpipe.media.audio_pass import AudioKey, LoudnessPlan, measure_mix
from avatarpipe.media.copy_pass import CopySource, copy_source, picture_blocker
from avatarpipe.media.ffmpeg import MediaInfo, run_ffmpeg
from avatarpipe.media.images import temp_name
from avatarpipe.media.job import OutputResult, PartInfo, PostJob
from avatarpipe.media.loudness import Loudness
from avatarpipe.media.parts import DAMAGE_MARKERS, Probes, collect_parts
from avatarpipe.media.presets import Preset
from avatarpipe.media.render_pass import OutputPlan, run_pass
from avatarpipe.media.subtitles import (
    Cue,
    cues_from_word_boundaries,
    join_scene_cues,
    to_srt,
    to_vtt,
)
from avatarpipe.media.verify import read_back, remove

__all__ = [
    "OutputResult",
    "PartInfo",
    "PostJob",
    "concat_copy",
    "default_parallelism",
    "join_scenes",
    "process_outputs",
    "render_output",
    "render_outputs",
]


def _inputs_key(job: PostJob) -> tuple[Any, ...]:
    """Jobs with equal keys read the same parts and can share one pass."""
    return (
        tuple(Path(s) for s in job.scenes),
        Path(job.intro) if job.intro else None,
        Path(job.outro) if job.outro else None,
    )


def _cues(job: PostJob, parts: list[Any], starts: list[float]) -> list[Cue]:
    scene_cues = job.scene_cues
    if scene_cues is None and job.scene_words is not None:
        style = job.preset.subtitle_style
        scene_cues = [
            cues_from_word_boundaries(words, max_chars=style.max_chars, max_lines=style.max_lines)
            for words in job.scene_words
        ]
    if scene_cues is None:
        return []
    scene_idx = [i for i, part in enumerate(parts) if part.role.startswith("scene")]
    offsets = [round(starts[i] * 1000) for i in scene_idx]
    last = scene_idx[-1]
    offsets.append(round((starts[last] + parts[last].duration_s) * 1000))
    return join_scene_cues(scene_cues, offsets)


def _plan(job: PostJob, probes: Probes) -> OutputPlan:
    """Check one job and name its files; loudness and copy are decided later."""
    p = job.preset
    out = Path(job.out_path)
    if not out.parent.is_dir():
        raise MediaError(f"{out}: output directory does not exist")
    if out.suffix.lower() != p.suffix:
        raise MediaError(f"{out}: preset {p.name} writes {p.suffix} files")
    parts = collect_parts(job, probes)
    starts, t = [], 0.0
    for part in parts:
        starts.append(t)
        t += part.duration_s
    cues = _cues(job, parts, starts)
    want_subs = bool(cues) and p.subtitles != "none"
    finals: dict[str, Path | None] = {
        "video": out,
        "thumb": out.with_suffix(".poster.png") if p.thumbnail else None,
        "sheet": out.with_suffix(".sheet.png") if p.contact_sheet else None,
        "srt": out.with_suffix(".srt") if want_subs else None,
        "vtt": out.with_suffix(".vtt") if want_subs else None,
    }
    return OutputPlan(
        job=job,
        parts=parts,
        starts=starts,
        total_s=t,
        cues=cues,
        soft_subs=want_subs and p.subtitles == "soft",
        burn=want_subs and p.subtitles == "burn",
        loudness=LoudnessPlan("off"),
        copy=None,
        reencode_reason=None,
        copy_audio=False,
        finals=finals,
        temps={k: temp_name(v) if v is not None else None for k, v in finals.items()},
    )


def _copy_audio(plan: OutputPlan) -> bool:
    """Whether the audio can go out untouched too: one part, no music, no loudness change."""
    p, audio = plan.preset, plan.parts[0].info.audio
    return (
        plan.copy is not None
        and len(plan.parts) == 1
        and plan.job.music is None
        and plan.loudness.mode == "off"
        and audio is not None
        and audio.codec == p.audio_codec
        and audio.sample_rate == p.sample_rate
        and audio.channels == "stereo"
    )


def _decide(plans: list[OutputPlan], work: Path) -> None:
    """Loudness pass 1 (once per audio setting) and copy-or-re-encode, for every output."""
    measured: dict[tuple[Any, ...], Loudness] = {}
    sources: dict[tuple[Any, ...], CopySource | str] = {}
    for plan in plans:
        job, p = plan.job, plan.preset
        if p.loudness.enabled:
            key = (AudioKey.of(p, job.music), tuple(part.duration_s for part in plan.parts))
            if key not in measured:
                measured[key] = measure_mix(
                    p, job.music, plan.parts, what=job.out_path.name, timeout=job.timeout_s
                )
            plan.loudness = LoudnessPlan.decide(p, measured[key])
        why = picture_blocker(p, logo=job.logo is not None, burns=plan.burn)
        if why is None:
            shape = (p.video_codec, p.width, p.height, p.fps, p.video_bitrate_kbps)
            if shape not in sources:
                sources[shape] = copy_source(
                    p, plan.parts, work, cache_dir=job.cache_dir, timeout=job.timeout_s
                )
            found = sources[shape]
            if isinstance(found, CopySource):
                plan.copy = found
            else:
                why = found
        plan.reencode_reason = why
        plan.copy_audio = _copy_audio(plan)


def _finish(
    plan: OutputPlan, started: float, n: int
) -> tuple[OutputResult, list[tuple[Path, Path]]]:
    """Verify one written output; return its result and the renames still to do."""
    p, job = plan.preset, plan.job
    name = job.out_path.name
    tmp_video = plan.temps["video"]
    assert tmp_video is not None
    info, duration, loud_after = read_back(tmp_video, name, job.timeout_s)
    tolerance = max(2.0 / p.fps, 0.1)
    if abs(duration - plan.total_s) > tolerance:
        raise MediaError(
            f"{name}: rendered {duration:.3f} s but the parts sum to {plan.total_s:.3f} s"
        )
    for kind in ("thumb", "sheet"):
        tmp = plan.temps[kind]
        if tmp is not None and (not tmp.is_file() or tmp.stat().st_size == 0):
            raise MediaError(f"{name}: ffmpeg did not write {tmp.name}")
    for kind, render in (("srt", to_srt), ("vtt", to_vtt)):
        tmp = plan.temps[kind]
        if tmp is not None:
            tmp.write_text(render(plan.cues), encoding="utf-8")
    out = Path(job.out_path)
    copied = (["video"] if plan.copy is not None else []) + (["audio"] if plan.copy_audio else [])
    renames = [
        (tmp, final)
        for kind, final in plan.finals.items()
        if final is not None and (tmp := plan.temps[kind]) is not None
    ]
    result = OutputResult(
        path=out,
        preset=p,
        info=MediaInfo(out, info.format_name, info.duration_s, info.bitrate_kbps, info.streams),
        duration_s=duration,
        expected_duration_s=plan.total_s,
        parts=[
            PartInfo(part.role, part.path, part.duration_s, start, part.info.audio is not None)
            for part, start in zip(plan.parts, plan.starts, strict=True)
        ],
        loudness_measured=plan.loudness.measured,
        loudness_mode=plan.loudness.mode,
        loudness_after=loud_after,
        sha256=file_digest(tmp_video),
        size_bytes=tmp_video.stat().st_size,
        subtitle_files=[f for f in (plan.finals["srt"], plan.finals["vtt"]) if f is not None],
        thumbnail=plan.finals["thumb"],
        contact_sheet=plan.finals["sheet"],
        elapsed_s=time.monotonic() - started,
        cues=plan.cues,
        copied_streams=copied,
        video_reencoded_because=plan.reencode_reason,
        pass_outputs=n,
    )
    return result, renames


def render_outputs(jobs: Sequence[PostJob]) -> list[OutputResult]:
    """Make several outputs of the same parts (a script's variants) in ONE ffmpeg pass.

    Each input is decoded once for all outputs; a picture the preset leaves as it is is copied
    (see the module docstring). All outputs get their final names together, after each was
    verified, or none does.

    Args:
        jobs: Outputs reading the same scenes, intro and outro (presets, music, logo and cues
            may differ); distinct ``out_path`` values.

    Returns:
        One result per job, in order.

    Raises:
        MediaError: The jobs read different parts or share an output path, an input is missing,
            truncated or of the wrong kind (the message names the role and file), ffmpeg fails,
            or a written file fails verification. Nothing is left behind: temporary files are
            removed and no final name is created.
    """
    if not jobs:
        return []
    if len({_inputs_key(j) for j in jobs}) != 1:
        raise MediaError("outputs of one pass must read the same scenes, intro and outro")
    if len({Path(j.out_path).resolve() for j in jobs}) != len(jobs):
        raise MediaError("two post-processing jobs write the same output path")
    started = time.monotonic()
    probes = Probes()
    plans: list[OutputPlan] = []
    try:
        for job in jobs:
            plans.append(_plan(job, probes))
        with tempfile.TemporaryDirectory(prefix="avatarpipe-post-") as work_dir:
            _decide(plans, Path(work_dir))
            run_pass(plans, Path(work_dir), timeout=jobs[0].timeout_s, threads=jobs[0].threads)
        finished = [_finish(plan, started, len(plans)) for plan in plans]
        for _, renames in finished:
            for tmp, final in renames:
                os.replace(tmp, final)
    except BaseException:
        remove(t for plan in plans for t in plan.temps.values())
        raise
    return [result for result, _ in finished]


def render_output(job: PostJob) -> OutputResult:
    """Make one finished output (see :func:`render_outputs` and the module docstring).

    Args:
        job: Inputs, preset and final path.

    Returns:
        The final path with its probe, durations, loudness before/after, checksum and size,
        the sidecar subtitles, poster and contact sheet that were written, and which streams
        were copied.

    Raises:
        MediaError: An input is missing, truncated or of the wrong kind (the message names the
            role and file), ffmpeg fails, or the written file fails verification. Nothing is left
            behind: temporary files are removed and no final name is created.
    """
    return render_outputs([job])[0]


def _probe_scenes(out: Path, paths: list[Path]) -> list[MediaInfo]:
    if not paths:
        raise MediaError(f"{out}: no scenes to join")
    probes = Probes()
    return [probes.get(f"scene {i}", path) for i, path in enumerate(paths, 1)]


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
            if any(marker in log for marker in DAMAGE_MARKERS):
                raise MediaError(f"{out.name}: a scene is damaged or truncated")
        total = sum(scene.duration_s for scene in infos)
        info, duration, _ = read_back(tmp, out.name, None)
        if abs(duration - total) > 0.2:
            raise MediaError(f"{out.name}: joined {duration:.3f} s but scenes sum to {total:.3f} s")
        os.replace(tmp, out)
    except BaseException:
        remove([tmp])
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
    """Render many outputs: one pass per set of inputs, passes side by side.

    Jobs reading the same scenes, intro and outro (a script's variants) are made by ONE
    :func:`render_outputs` pass, which decodes the inputs once for all of them. Jobs of
    different scripts cannot share a decode, so they are separate passes (separate ffmpeg
    processes), run at most :func:`default_parallelism` at once. Encoder threads are split
    between the concurrent passes (``cpu_count // parallel``) unless a job sets ``threads``.
    Every pass runs to completion even when another fails.

    Args:
        jobs: The outputs to make (distinct ``out_path`` values).
        max_parallel: Override the bound on concurrent passes.

    Returns:
        Results in the order of ``jobs``.

    Raises:
        MediaError: Two jobs share an output path, or a pass failed (the first failure is raised
            after all passes finished; the failed pass left nothing behind, the others' files
            stay).
    """
    outs = [Path(j.out_path).resolve() for j in jobs]
    if len(set(outs)) != len(outs):
        raise MediaError("two post-processing jobs write the same output path")
    if not jobs:
        return []
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(_inputs_key(job), []).append(i)
    parallel = max(1, max_parallel or default_parallelism(len(groups)))
    threads = max(1, (os.cpu_count() or 1) // min(parallel, len(groups)))
    jobs = [job if job.threads else dataclasses.replace(job, threads=threads) for job in jobs]
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="postprocess") as pool:
        futures = [
            (idx, pool.submit(render_outputs, [jobs[i] for i in idx])) for idx in groups.values()
        ]
        errors = [f.exception() for _, f in futures]
    for err in errors:
        if err is not None:
            raise err
    results: list[OutputResult | None] = [None] * len(jobs)
    for idx, future in futures:
        for i, result in zip(idx, future.result(), strict=True):
            results[i] = result
    return [r for r in results if r is not None]
