"""Benchmark the emulator's renderer: 1080p h264 speech videos of about 10 s, 60 s and 300 s.

Each length renders in its own Python process so that peak memory is that run's alone:
``ru_maxrss`` of the worker (Python) plus the largest child (ffmpeg). Sprites are drawn and
cached before timing starts (the steady state of a running emulator).

Run: ``uv run python benchmarks/render.py [--lengths 10,60,300]``. The last line printed is JSON:
``ratio_<N>s`` (render seconds per second of video; goal <= 0.5), ``peak_rss_mb_<N>s`` (Python +
ffmpeg), ``python_rss_mb_<N>s``, ``ffmpeg_rss_mb_<N>s`` and ``duration_s_<N>s``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SENTENCES = [
    "Welcome to the quarterly update from the product team.",
    "Revenue grew twelve percent, driven by strong demand in Europe and Asia.",
    "We shipped three major releases and fixed more than two hundred bugs.",
    "Customer satisfaction reached a record high this quarter.",
    "Next, let us look at the roadmap for the coming months.",
    "Our focus remains on reliability, speed and a delightful experience.",
    "Thank you all for your hard work and dedication.",
    "Please send your questions to the team before Friday.",
]


def _text_for(seconds: float) -> str:
    from avatarpipe.emulator.render.speech import synthesize
    from avatarpipe.emulator.render.ssml import parse_input

    sample = " ".join(SENTENCES)
    with tempfile.TemporaryDirectory() as tmp:
        result = synthesize(parse_input(sample, "PlainText"), Path(tmp) / "calibrate.wav")
    per_sentence = result.duration_ms / 1000 / len(SENTENCES)
    count = max(1, round(seconds / per_sentence))
    return " ".join(SENTENCES[i % len(SENTENCES)] for i in range(count))


def worker(seconds: float) -> dict[str, float]:
    from avatarpipe.emulator.render import AvatarRenderer
    from avatarpipe.emulator.render.avatar import sprites_for
    from avatarpipe.emulator.rendering import RenderSpec

    text = _text_for(seconds)
    spec = RenderSpec(
        content=text,
        video_format="mp4",
        video_codec="h264",
        bitrate_kbps=2000,
        subtitle_type="soft_embedded",
        word_boundary=True,
        sentence_boundary=True,
        character="lisa",
        style="casual-sitting",
    )
    with tempfile.TemporaryDirectory(prefix="avatarpipe-bench-") as tmp:
        cache = Path(tmp) / "cache"
        sprites_for(spec.character, spec.style, photo=False, cache_dir=cache)
        renderer = AvatarRenderer(cache_dir=cache)
        t0 = time.perf_counter()
        result = renderer.render(spec, Path(tmp) / "out", "0001")
        elapsed = time.perf_counter() - t0
    duration = result.duration_ms / 1000
    py_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ff_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "seconds": elapsed,
        "duration_s": duration,
        "ratio": elapsed / duration,
        "python_rss_mb": py_mb,
        "ffmpeg_rss_mb": ff_mb,
        "peak_rss_mb": py_mb + ff_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="10,60,300", help="comma-separated seconds")
    parser.add_argument("--worker", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker)))
        return
    summary: dict[str, float] = {}
    for n in [int(x) for x in args.lengths.split(",") if x.strip()]:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"{n:>4} s target: {res['duration_s']:.1f} s of video rendered in "
            f"{res['seconds']:.2f} s (ratio {res['ratio']:.3f}); peak RSS python "
            f"{res['python_rss_mb']:.0f} MB + ffmpeg {res['ffmpeg_rss_mb']:.0f} MB",
            flush=True,
        )
        summary[f"ratio_{n}s"] = round(res["ratio"], 4)
        summary[f"peak_rss_mb_{n}s"] = round(res["peak_rss_mb"], 1)
        summary[f"python_rss_mb_{n}s"] = round(res["python_rss_mb"], 1)
        summary[f"ffmpeg_rss_mb_{n}s"] = round(res["ffmpeg_rss_mb"], 1)
        summary[f"duration_s_{n}s"] = round(res["duration_s"], 2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
