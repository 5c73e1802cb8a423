"""Post-processing benchmark: copy what does not change, decode once for every variant.

    uv sync --frozen --group bench                 # installs moviepy (bench group only)
    uv run --frozen --group bench python benchmarks/postprocess.py [--duration 60] [--runs 3]

The input is service-shaped: 1920x1080, 25 fps, H.264 (x264 veryfast, 2000 kb/s, GOP 50, like
the emulator renders) + AAC 96 kb/s 48 kHz in a faststart MP4, synthesised with lavfi
(``testsrc2`` + a speech-like tone), 20 s by default. Every way writes what the ``web-1080p``
preset asks for: the video, loudness at -16 LUFS / -1.5 dBTP, soft captions (mov_text) from word
boundaries, a poster PNG and a 4x3 contact sheet.

Ways (each in a fresh child process; its CPU is user+sys of the child and of the ffmpeg
processes it waited for, ``getrusage`` around the work only, imports excluded):

* ``copy``: ours, ``render_output`` with ``web-1080p`` as shipped: the picture is copied;
* ``reencode``: ours, the same output with ``video_copy: never`` (a forced full re-encode);
* ``hand``: the best hand-written ffmpeg command for the same output, itself copying the
  picture: one process, single-pass ``loudnorm``, poster after an input seek, contact sheet from
  a keyframes-only decode; no loudness measurement, no verification;
* ``variants_one``: ours, the 16:9, 9:16 and 1:1 variants in one pass (``render_outputs``);
* ``variants_sep``: ours, the same three variants as three separate ``render_output`` calls,
  two at a time as ``process_outputs`` ran them before (three loudness passes, three
  processes each decoding the input);
* ``moviepy``: the same output with moviepy 2 (it cannot copy a stream: every frame goes through
  Python and is re-encoded; loudness is one RMS-based gain in numpy).

Each run does every way once, in that order (so the ratios' two sides alternate, ABAB...), and
``--runs`` runs are made (default 3). A ratio is computed per run and the median is reported,
with every run's value. Ratios are of CPU seconds (what a worker pays; less disturbed by other
work on a shared machine than wall time); wall-time ratios are printed beside them. The last
line is JSON with ``copy_over_reencode`` (goal <= 0.10), ``variants_one_pass_over_separate``
(<= 0.70), ``ours_over_hand`` (<= 1.05), ``moviepy_over_ours`` (>= 10) and
``cpu_s_per_output_minute``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from avatarpipe.media.ffmpeg import ffmpeg_exe, probe, run_ffmpeg  # noqa: E402
from avatarpipe.media.loudness import measure_loudness  # noqa: E402
from avatarpipe.media.postprocess import (  # noqa: E402
    PostJob,
    default_parallelism,
    render_output,
    render_outputs,
)
from avatarpipe.media.presets import load_preset  # noqa: E402
from avatarpipe.media.subtitles import cues_from_word_boundaries, to_srt  # noqa: E402

SPEECH = (
    "aevalsrc='0.25*(sin(2*PI*180*t)+0.5*sin(2*PI*360*t)+0.25*sin(2*PI*540*t))"
    "*(0.55+0.45*sin(2*PI*4*t))*gt(mod(t\\,1.25)\\,0.15)':s=48000:d={d}"
)
W, H, FPS = 1920, 1080, 25
TARGET_I, TARGET_TP, TARGET_LRA = -16.0, -1.5, 11.0
ASPECTS = ("16:9", "9:16", "1:1")


def make_inputs(work: Path, duration: float) -> dict[str, Path]:
    src = work / "scene.mp4"
    if not src.exists():
        print(f"making the {duration:.0f} s service-shaped clip (not timed)...", file=sys.stderr)
        run_ffmpeg(
            ["-v", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=s={W}x{H}:r={FPS}:d={duration}",
             "-f", "lavfi", "-i", SPEECH.format(d=duration) + ",aformat=channel_layouts=stereo",
             "-c:v", "libx264", "-preset", "veryfast", "-b:v", "2000k", "-g", "50",
             "-pix_fmt", "yuv420p", "-r", str(FPS),
             "-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-movflags", "+faststart",
             "-shortest", str(src)],
            what="make benchmark clip",
        )  # fmt: skip
    words = [
        {"Text": f"word{i}" + ("." if i % 8 == 7 else ""), "AudioOffset": 150 + i * 400,
         "Duration": 330}
        for i in range(int((duration - 0.5) / 0.4))
    ]  # fmt: skip
    wb = work / "words.json"
    wb.write_text(json.dumps(words))
    return {"scene": src, "words": wb}


def _cues(inp: dict[str, Path]) -> list[Any]:
    return cues_from_word_boundaries(json.loads(inp["words"].read_text()))


def run_copy(inp: dict[str, Path], out: Path, *, never: bool = False) -> dict[str, Any]:
    preset = load_preset("web-1080p", {"video_copy": "never"} if never else None)
    result = render_output(
        PostJob(scenes=[inp["scene"]], preset=preset, out_path=out, scene_cues=[_cues(inp)])
    )
    return {"outputs": [str(out)], "copied": result.copied_streams}


def run_reencode(inp: dict[str, Path], out: Path) -> dict[str, Any]:
    return run_copy(inp, out, never=True)


def _variant_jobs(inp: dict[str, Path], out: Path) -> list[PostJob]:
    base = load_preset("web-1080p")
    return [
        PostJob(
            scenes=[inp["scene"]],
            preset=base.for_aspect(aspect),  # type: ignore[arg-type]
            out_path=out.with_name(f"web-{aspect.replace(':', 'x')}.mp4"),
            scene_cues=[_cues(inp)],
        )
        for aspect in ASPECTS
    ]


def run_variants_one(inp: dict[str, Path], out: Path) -> dict[str, Any]:
    results = render_outputs(_variant_jobs(inp, out))
    return {
        "outputs": [str(r.path) for r in results],
        "copied": [r.copied_streams for r in results],
    }


def run_variants_sep(inp: dict[str, Path], out: Path) -> dict[str, Any]:
    # as before one pass per script: each variant its own render, two at a time on this machine
    jobs = _variant_jobs(inp, out)
    parallel = default_parallelism(len(jobs))
    threads = max(1, (os.cpu_count() or 1) // parallel)
    jobs = [dataclasses.replace(job, threads=threads) for job in jobs]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        results = list(pool.map(render_output, jobs))
    return {
        "outputs": [str(r.path) for r in results],
        "copied": [r.copied_streams for r in results],
    }


def run_hand(inp: dict[str, Path], out: Path) -> dict[str, Any]:
    srt = out.with_suffix(".srt")
    srt.write_text(to_srt(_cues(inp)))
    dur = probe(inp["scene"]).duration_s
    graph = (
        f"[0:a]loudnorm=I={TARGET_I}:TP={TARGET_TP}:LRA={TARGET_LRA},aresample=48000[a];"
        f"[3:v]select='isnan(prev_selected_t)+gte(t-prev_selected_t\\,{dur / 12 - 0.02:.3f})',"
        f"scale=480:-2,tile=4x3[sheet]"
    )
    scene = str(inp["scene"])
    run_ffmpeg(
        ["-y", "-i", scene, "-i", str(srt), "-ss", f"{dur * 0.1:.3f}", "-i", scene,
         "-skip_frame", "nokey", "-i", scene, "-filter_complex", graph,
         "-map", "0:v", "-c:v", "copy", "-map", "[a]", "-c:a", "aac", "-b:a", "128k",
         "-ar", "48000", "-ac", "2", "-map", "1:s", "-c:s", "mov_text",
         "-movflags", "+faststart", str(out),
         "-map", "2:v", "-frames:v", "1", "-update", "1", str(out.with_suffix(".poster.png")),
         "-map", "[sheet]", "-frames:v", "1", "-update", "1", str(out.with_suffix(".sheet.png"))],
        what="hand-written command",
    )  # fmt: skip
    return {"outputs": [str(out)], "copied": ["video"]}


def run_moviepy(inp: dict[str, Path], out: Path) -> dict[str, Any]:
    import numpy as np
    from moviepy import VideoFileClip
    from moviepy.audio.AudioClip import AudioArrayClip
    from PIL import Image

    sr = 48000
    clip = VideoFileClip(str(inp["scene"]))
    dur = clip.duration
    speech = clip.audio.to_soundarray(fps=sr)
    rms_db = 20 * np.log10(np.sqrt(np.mean(speech**2)) + 1e-12)
    # moviepy has no R128 meter: one RMS-based gain (RMS sits ~2 dB under LUFS for this content)
    mix = speech * 10 ** ((TARGET_I - 2.0 - rms_db) / 20)
    ceiling = 10 ** (TARGET_TP / 20)
    peak = np.abs(mix).max()
    if peak > ceiling:
        mix = mix * (ceiling / peak)
    video = clip.with_audio(AudioArrayClip(mix, fps=sr))
    out.with_suffix(".srt").write_text(to_srt(_cues(inp)))  # moviepy cannot mux a text track
    video.write_videofile(
        str(out), fps=FPS, codec="libx264", preset="veryfast", bitrate="5000k",
        audio_codec="aac", audio_bitrate="128k", audio_fps=sr,
        ffmpeg_params=["-pix_fmt", "yuv420p", "-movflags", "+faststart", "-maxrate", "7500k",
                       "-bufsize", "10000k", "-g", "50"],
        logger=None,
    )  # fmt: skip
    video.save_frame(str(out.with_suffix(".poster.png")), t=dur * 0.1)
    tiles = [Image.fromarray(video.get_frame(i * dur / 12)).resize((480, 270)) for i in range(12)]
    sheet = Image.new("RGB", (480 * 4, 270 * 3))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % 4) * 480, (i // 4) * 270))
    sheet.save(out.with_suffix(".sheet.png"))
    clip.close()
    return {"outputs": [str(out)], "copied": []}


RUNNERS = {
    "copy": run_copy,
    "reencode": run_reencode,
    "hand": run_hand,
    "variants_one": run_variants_one,
    "variants_sep": run_variants_sep,
    "moviepy": run_moviepy,
}


SPEEDS = ("ultrafast", "superfast", "veryfast", "faster")


def encoders(inp: dict[str, Path], work: Path) -> list[dict[str, Any]]:
    """CPU seconds and SSIM of the forced 16:9 re-encode and the 9:16 variant per x264 speed."""
    rows = []
    for aspect in ("16:9", "9:16"):
        for speed in SPEEDS:
            out = work / f"enc-{aspect.replace(':', 'x')}-{speed}.mp4"
            preset = load_preset(
                "web-1080p",
                {
                    "speed": speed,
                    "video_copy": "never",
                    "thumbnail": False,
                    "contact_sheet": False,
                    "loudness": {"enabled": False},
                },
            ).for_aspect(aspect)  # type: ignore[arg-type]
            cpu0 = _kids_cpu()
            render_output(PostJob(scenes=[inp["scene"]], preset=preset, out_path=out))
            cpu = _kids_cpu() - cpu0
            # quality: the output against the same conform of the source, uncompressed
            ref = f"scale={preset.width}:-2,pad={preset.width}:{preset.height}:(ow-iw)/2:(oh-ih)/2"
            log = run_ffmpeg(
                ["-v", "info", "-i", str(out), "-i", str(inp["scene"]), "-lavfi",
                 f"[1:v]{ref}[ref];[0:v][ref]ssim", "-f", "null", "-"],
                what="ssim",
            )  # fmt: skip
            ssim = float(log.rsplit("All:", 1)[1].split()[0])
            rows.append({"aspect": aspect, "speed": speed, "cpu_s": round(cpu, 2), "ssim": ssim})
            print(json.dumps(rows[-1]), file=sys.stderr)
            out.unlink()
    return rows


def _kids_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def child(way: str, work: Path) -> None:
    if way == "moviepy":  # import outside the measured region, as for the other ways
        import moviepy  # noqa: F401

    inp = {k: work / v for k, v in json.loads((work / "inputs.json").read_text()).items()}
    out_dir = work / way
    out_dir.mkdir(exist_ok=True)
    for old in out_dir.iterdir():
        old.unlink()
    out = out_dir / "web.mp4"
    cpu0, start = _cpu(), time.perf_counter()
    extra = RUNNERS[way](inp, out)
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu0
    outputs = [Path(p) for p in extra.pop("outputs")]
    minutes = sum(probe(p).duration_s for p in outputs) / 60
    info = probe(outputs[0])
    loud = measure_loudness(outputs[0])
    print(
        json.dumps(
            {
                "way": way,
                "seconds": round(elapsed, 2),
                "cpu_s": round(cpu, 2),
                "cpu_s_per_output_minute": round(cpu / minutes, 2),
                "outputs": len(outputs),
                "video": [info.video.codec, info.video.width, info.video.height]
                if info.video
                else None,
                "streams": [s.kind for s in info.streams],
                "integrated_lufs": loud.integrated_lufs,
                "true_peak_dbtp": loud.true_peak_dbtp,
                **extra,
            }
        )
    )


def _ratio(runs: list[dict[str, dict[str, Any]]], a: str, b: str, key: str) -> dict[str, Any]:
    values = [round(r[a][key] / r[b][key], 3) for r in runs]
    return {"median": statistics.median(values), "runs": values}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=20.0, help="clip seconds (60 for 1 min)")
    ap.add_argument("--runs", type=int, default=3, help="runs of every way (ratios per run)")
    ap.add_argument("--no-moviepy", action="store_true", help="skip moviepy (slow)")
    ap.add_argument("--work", type=Path, default=None, help="keep inputs/outputs here")
    ap.add_argument(
        "--encoders", action="store_true", help="instead: CPU and SSIM per x264 speed preset"
    )
    ap.add_argument("--child", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.work)
        return
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="avatarpipe-bench-")
        args.work = Path(tmp.name)
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    inp = make_inputs(work, args.duration)
    (work / "inputs.json").write_text(json.dumps({k: v.name for k, v in inp.items()}))
    if args.encoders:
        print(json.dumps({"clip_s": args.duration, "encoders": encoders(inp, work)}))
        return
    ways = [w for w in RUNNERS if not (args.no_moviepy and w == "moviepy")]
    if "moviepy" in ways and importlib.util.find_spec("moviepy") is None:
        sys.exit("moviepy is not installed: run `uv sync --frozen --group bench` (or --no-moviepy)")
    runs: list[dict[str, dict[str, Any]]] = []
    for n in range(args.runs):
        run: dict[str, dict[str, Any]] = {}
        for way in ways:
            print(f"run {n + 1}/{args.runs}: {way}...", file=sys.stderr)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", way, "--work", str(work)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                sys.exit(f"{way} failed:\n{proc.stderr[-3000:]}")
            run[way] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps(run[way]), file=sys.stderr)
        runs.append(run)
    figures = {
        "copy_over_reencode": ("copy", "reencode"),
        "variants_one_pass_over_separate": ("variants_one", "variants_sep"),
        "ours_over_hand": ("copy", "hand"),
        "moviepy_over_ours": ("moviepy", "copy"),
    }
    summary: dict[str, Any] = {"clip_s": args.duration, "runs": args.runs, "ffmpeg": ffmpeg_exe()}
    for name, (a, b) in figures.items():
        if a in ways:
            cpu = _ratio(runs, a, b, "cpu_s")
            summary[name] = cpu["median"]
            summary[f"{name}_runs"] = cpu["runs"]
            summary[f"{name}_wall"] = _ratio(runs, a, b, "seconds")["median"]
    summary["cpu_s_per_output_minute"] = {
        w: statistics.median(r[w]["cpu_s_per_output_minute"] for r in runs) for w in ways
    }
    summary["cpu_s"] = {w: [r[w]["cpu_s"] for r in runs] for w in ways}
    summary["wall_s"] = {w: [r[w]["seconds"] for r in runs] for w in ways}
    summary["integrated_lufs"] = {w: runs[-1][w]["integrated_lufs"] for w in ways}
    summary["true_peak_dbtp"] = {w: runs[-1][w]["true_peak_dbtp"] for w in ways}
    summary["goals"] = {
        "copy_over_reencode": "<= 0.10",
        "variants_one_pass_over_separate": "<= 0.70",
        "ours_over_hand": "<= 1.05",
        "moviepy_over_ours": ">= 10",
    }
    if tmp is not None:
        tmp.cleanup()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
