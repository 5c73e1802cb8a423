"""Benchmark memory of the download path (500 MB vs 5 MB result) and Prefect's overhead per scene.

**Memory.** A real MP4 (2 s, 320x180) followed by a top-level ``free`` box pads the result to
5 MB or 500 MB: still a valid, probeable MP4. A local HTTP server serves it, and
``avatarpipe.batch.fetch.fetch_job`` fetches it exactly as it fetches a job's result: streamed
download, size check, ffmpeg probe, SHA-256, marker. Each size runs in its own process so
that ``ru_maxrss`` is that run's peak alone. Target: flat (500 MB within 64 MB of 5 MB).

**Prefect overhead.** The ``synthesize`` flow on N scenes against the emulator (time scale 0)
against the same library calls (plan, submit, wait, fetch) without Prefect, each on a fresh
emulator: ``(flow - plain) / N`` seconds per scene.

Run: ``uv run python benchmarks/memory.py [--scenes 10]``. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

KEY = "local-emulator-key"


def make_padded_mp4(path: Path, size: int) -> None:
    """A 2 s MP4 padded with a top-level ``free`` box to exactly ``size`` bytes."""
    from avatarpipe.media.ffmpeg import run_ffmpeg

    small = path.with_name("small.mp4")
    run_ffmpeg(
        [
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=s=320x180:r=25:d=2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-movflags",
            "+faststart",
            str(small),
        ],
        what="benchmark clip",
    )
    data = small.read_bytes()
    pad = size - len(data)
    with path.open("wb") as fh:
        fh.write(data)
        fh.write(struct.pack(">I", pad) + b"free")
        zeros = b"\0" * (1 << 20)
        left = pad - 8
        while left > 0:
            fh.write(zeros[: min(left, len(zeros))])
            left -= min(left, len(zeros))
    small.unlink()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None


def fetch_worker(size_mb: int) -> dict[str, float]:
    """Serve a padded MP4 of ``size_mb`` MB locally and fetch it; return peak RSS figures."""
    from avatarpipe.batch.fetch import fetch_job
    from avatarpipe.batch.plan import JobOptions, VideoInput, plan_jobs
    from avatarpipe.connect import open_speech
    from avatarpipe.settings import Settings
    from avatarpipe.speech.models import BatchAvatarConfig, BatchSynthesis
    from avatarpipe.speech.ratelimit import UnlimitedBudget

    with tempfile.TemporaryDirectory(prefix="avatarpipe-bench-mem-") as tmp:
        root = Path(tmp)
        served = root / "served"
        served.mkdir()
        size = size_mb * 1024 * 1024
        make_padded_mp4(served / "0001.mp4", size)
        summary = {"jobID": "bench", "status": "Succeeded", "results": []}
        (served / "summary.json").write_text(json.dumps(summary))
        handler = functools.partial(_QuietHandler, directory=str(served))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        avatar = BatchAvatarConfig(talking_avatar_character="lisa", talking_avatar_style="casual")
        planned = plan_jobs(
            [VideoInput(key="scene-001", content="Hello.")], JobOptions(avatar=avatar)
        )[0]
        job = BatchSynthesis.model_validate(
            {
                "id": planned.job_id,
                "status": "Succeeded",
                "inputKind": "PlainText",
                "avatarConfig": {"talkingAvatarCharacter": "lisa", "videoFormat": "Mp4"},
                "outputs": {"result": f"{base}/0001.mp4", "summary": f"{base}/summary.json"},
                "properties": {"sizeInBytes": size},
            }
        )
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.monotonic()
        with open_speech(
            Settings(speech_key=KEY),  # type: ignore[arg-type]
            endpoint="http://127.0.0.1:1",
            backend="emulator",
            budget=UnlimitedBudget(),
        ) as clients:
            client = clients.batch
            videos = fetch_job(client, job, planned, root / "cache")
        elapsed = time.monotonic() - started
        server.shutdown()
        assert videos[0].size_bytes == size
        return {
            "size_mb": size_mb,
            "python_rss_before_mb": before,
            "python_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "fetch_s": elapsed,
        }


def _measure(size_mb: int) -> dict[str, float]:
    out = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, __file__, "--worker", str(size_mb)],
        check=True,
        capture_output=True,
        text=True,
    )
    data: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def prefect_overhead(scenes: int, work: Path) -> dict[str, float]:
    """Seconds per scene that the flow adds over the same library calls without Prefect."""
    from prefect import flow

    from avatarpipe.batch.fetch import fetch_job
    from avatarpipe.batch.plan import JobOptions, VideoInput, plan_jobs
    from avatarpipe.batch.run import SynthesisRequest
    from avatarpipe.batch.submit import JobLookup, submit_jobs
    from avatarpipe.batch.wait import wait_for_jobs
    from avatarpipe.connect import open_speech
    from avatarpipe.emulator.config import EmulatorConfig
    from avatarpipe.emulator.placeholder import PlaceholderRenderer
    from avatarpipe.emulator.server import EmulatorServer
    from avatarpipe.settings import Settings
    from avatarpipe.speech.models import BatchAvatarConfig, BatchSynthesisConfig, InputKind
    from avatarpipe.speech.ratelimit import UnlimitedBudget
    from flows.connections import SpeechTarget
    from flows.synthesize import synthesize

    @flow(name="bench-warm-up")
    def warm_up() -> None:
        """Start Prefect's ephemeral API before anything is timed."""

    warm_up()
    avatar = BatchAvatarConfig(talking_avatar_character="lisa", talking_avatar_style="casual")
    synthesis = BatchSynthesisConfig(voice="en-US-AvaMultilingualNeural")
    texts = [f"Scene {i} says hello to everyone." for i in range(1, scenes + 1)]

    def emulator(name: str) -> EmulatorServer:
        config = EmulatorConfig(port=0, state_dir=work / name, time_scale=0, renderer="placeholder")
        return EmulatorServer(config, PlaceholderRenderer((320, 180))).start()

    emu = emulator("emu-plain")
    try:
        started = time.monotonic()
        items = [
            VideoInput(key=f"scene-{i:03d}", content=t, input_kind=InputKind.PLAIN_TEXT)
            for i, t in enumerate(texts)
        ]
        planned = plan_jobs(items, JobOptions(avatar=avatar, synthesis=synthesis, label="plain"))
        by_id = {j.job_id: j for j in planned}
        with open_speech(
            Settings(speech_key=KEY),  # type: ignore[arg-type]
            endpoint=emu.url,
            backend="emulator",
            budget=UnlimitedBudget(),
        ) as clients:
            client = clients.batch
            lookup = JobLookup(client)
            submit_jobs(client, lookup, planned)
            done = wait_for_jobs(lookup, list(by_id), poll_interval_s=0.2, timeout_s=600)
            for job_id, view in done.jobs.items():
                fetch_job(client, view, by_id[job_id], work / "cache-plain")
        plain = time.monotonic() - started
    finally:
        emu.stop()

    emu = emulator("emu-flow")
    try:
        request = SynthesisRequest(
            label="flow",
            inputs=[
                VideoInput(key=f"scene-{i:03d}", content=t, input_kind="PlainText")
                for i, t in enumerate(texts)
            ],
            avatar=avatar,
            synthesis=synthesis,
            cache_dir=str(work / "cache-flow"),
            poll_interval_s=0.2,
        )
        target = SpeechTarget(
            endpoint=emu.url, rate_limit_name="bench-mem", requests_per_minute=1e6
        )
        started = time.monotonic()
        synthesize(request, target)
        with_prefect = time.monotonic() - started
    finally:
        emu.stop()
    return {
        "plain_s": plain,
        "flow_s": with_prefect,
        "prefect_overhead_s_per_scene": (with_prefect - plain) / scenes,
    }


def main() -> None:
    """Run both measurements and print the figures (last line: JSON)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(fetch_worker(args.worker)))
        return

    small = _measure(5)
    big = _measure(500)
    work = Path(tempfile.mkdtemp(prefix="avatarpipe-bench-overhead-"))
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    try:
        overhead = prefect_overhead(args.scenes, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = {
        "peak_rss_mb_5mb": round(small["python_peak_rss_mb"], 1),
        "peak_rss_mb_500mb": round(big["python_peak_rss_mb"], 1),
        "peak_rss_delta_mb": round(big["python_peak_rss_mb"] - small["python_peak_rss_mb"], 1),
        "children_peak_rss_mb_5mb": round(small["children_peak_rss_mb"], 1),
        "children_peak_rss_mb_500mb": round(big["children_peak_rss_mb"], 1),
        "fetch_s_5mb": round(small["fetch_s"], 3),
        "fetch_s_500mb": round(big["fetch_s"], 3),
        "scenes": args.scenes,
        "plain_s": round(overhead["plain_s"], 2),
        "flow_s": round(overhead["flow_s"], 2),
        "prefect_overhead_s_per_scene": round(overhead["prefect_overhead_s_per_scene"], 3),
    }
    print(
        f"download+verify peak RSS: {figures['peak_rss_mb_5mb']} MB (5 MB result), "
        f"{figures['peak_rss_mb_500mb']} MB (500 MB result); Prefect overhead "
        f"{figures['prefect_overhead_s_per_scene']} s/scene"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
