"""Benchmark a 20-scene batch on the emulator: makespan against the ideal, requests per video.

Two runs on two fresh emulators with the same settings (render-time model scaled by
``--time-scale``; placeholder renderer at 320x180 so that the modelled time dominates):

* **ours**: the ``synthesize`` flow (Prefect, ephemeral API) on 20 scenes; scenes are packed
  into one multi-input job when Azurite is available (``--pack auto``), as the product does
  with a blob container configured; polling every ``--poll`` modelled seconds (the product's
  default ``AVATARPIPE_POLL_INTERVAL_S`` is 20).
* **sample**: Microsoft's Python sample's loop, once per video (one job per video: PUT, then GET
  every 5 modelled seconds until the job is final), the 20 loops running side by side.

Service requests are the emulator's Azure API requests (``/avatar/...``); result downloads go
to storage and are not counted. ``makespan_over_ideal`` is our wall time over the ideal: the
emulator's modelled queue and render time of our longest job plus that job's download (and
verification) measured alone afterwards. There is no post-processing in this run.

Run: ``uv run python benchmarks/batch.py [--scenes 20] [--time-scale 0.1] [--poll 20]
[--pack auto|on|off]``. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from avatarpipe.storage import azurite

REPO = Path(__file__).resolve().parents[1]
AZURITE = azurite.BINARY
_SENTENCE = (
    "welcome to the quarterly update revenue grew twelve percent driven by strong demand "
    "in europe and asia we shipped three major releases and fixed more than two hundred bugs"
)
WORDS = _SENTENCE.split(" ")
KEY = "local-emulator-key"
API = "api-version=2024-08-01"


def scene_text(i: int) -> str:
    """Scene ``i`` (1-based): 6 to 25 words, so that jobs differ in length."""
    n = 6 + (i * 7) % 20
    return f"Scene {i}. " + " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n)) + "."


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_azurite(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``azurite-blob`` in memory; return the process and a connection string."""
    port = _free_port()
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        azurite.command(port),
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("azurite-blob did not start") from None
            time.sleep(0.1)
    return proc, azurite.connection_string(port)


def start_emulator(state: Path, time_scale: float) -> Any:
    """An in-process emulator with the default render-time model scaled by ``time_scale``."""
    from avatarpipe.emulator.config import EmulatorConfig
    from avatarpipe.emulator.placeholder import PlaceholderRenderer
    from avatarpipe.emulator.server import EmulatorServer

    config = EmulatorConfig(
        port=0, state_dir=state, time_scale=time_scale, renderer="placeholder", render_workers=4
    )
    return EmulatorServer(config, PlaceholderRenderer((320, 180))).start()


def api_requests(url: str) -> int:
    """Azure API requests the emulator answered (storage downloads excluded)."""
    import httpx

    stats = httpx.get(f"{url}/emulator/stats", headers={"Ocp-Apim-Subscription-Key": KEY}).json()
    return sum(
        sum(by_status.values())
        for route, by_status in stats["requests_by_route"].items()
        if route.split(" ", 1)[1].startswith(("/avatar", "/customvoice"))
    )


def modelled_job_s(duration_ms: int, time_scale: float) -> float:
    """The emulator's modelled queue + render time of a job with this much video."""
    from avatarpipe.emulator.config import EmulatorConfig

    defaults = EmulatorConfig()
    return time_scale * (
        defaults.queue_delay_s + defaults.render_s_per_video_s * duration_ms / 1000
    )


def run_ours(
    scenes: int, time_scale: float, poll_s: float, pack: bool, work: Path
) -> dict[str, Any]:
    """The synthesize flow on a fresh emulator; wall time, requests, the ideal."""
    from avatarpipe.batch.fetch import fetch_job
    from avatarpipe.batch.plan import JobOptions, VideoInput, plan_jobs
    from avatarpipe.batch.run import SynthesisRequest
    from avatarpipe.connect import open_speech
    from avatarpipe.settings import Settings
    from avatarpipe.speech.models import (
        BatchAvatarConfig,
        BatchSynthesisConfig,
        VideoCodec,
    )
    from avatarpipe.speech.ratelimit import UnlimitedBudget
    from avatarpipe.storage.blob import BlobStore
    from flows.connections import SpeechTarget
    from flows.synthesize import synthesize

    emu = start_emulator(work / "emu-ours", time_scale)
    try:
        avatar = BatchAvatarConfig(
            talking_avatar_character="lisa",
            talking_avatar_style="casual-sitting",
            video_codec=VideoCodec.H264,
        )
        synthesis = BatchSynthesisConfig(voice="en-US-AvaMultilingualNeural")
        request = SynthesisRequest(
            label="bench",
            inputs=[
                VideoInput(key=f"scene-{i:03d}", content=scene_text(i), input_kind="PlainText")
                for i in range(1, scenes + 1)
            ],
            avatar=avatar,
            synthesis=synthesis,
            cache_dir=str(work / "cache"),
            poll_interval_s=poll_s * time_scale,
            timeout_s=3600,
            pack=pack,
        )
        target = SpeechTarget(
            endpoint=emu.url, rate_limit_name="bench-batch", requests_per_minute=1e6
        )
        started = time.monotonic()
        outcome = synthesize(request, target)
        wall = time.monotonic() - started
        requests = api_requests(emu.url)
        assert len(outcome.videos) == scenes

        # The ideal: the longest job's modelled time + its download and verification alone.
        longest = max(outcome.jobs, key=lambda j: j.duration_ms or 0)
        modelled = modelled_job_s(longest.duration_ms or 0, time_scale)
        options = JobOptions(avatar=avatar, synthesis=synthesis, label="bench")
        items = request.inputs
        planned = {j.job_id: j for j in plan_jobs(items, options, pack=pack)}
        store = None
        if pack:
            conn = os.environ["AVATARPIPE_BLOB_CONNECTION_STRING"]
            store = BlobStore.from_connection_string(conn, "avatarpipe")
        with open_speech(
            Settings(speech_key=KEY),  # type: ignore[arg-type]
            endpoint=emu.url,
            backend="emulator",
            budget=UnlimitedBudget(),
        ) as clients:
            client = clients.batch
            view = client.get_synthesis(longest.job_id)
            t0 = time.monotonic()
            fetch_job(
                client,
                view,
                planned[longest.job_id],
                work / "cache-alone",
                blob_stream=store.stream if store else None,
            )
            download_alone = time.monotonic() - t0
        ideal = modelled + download_alone
        return {
            "wall_s": wall,
            "requests": requests,
            "videos": len(outcome.videos),
            "jobs": len(outcome.jobs),
            "longest_job_modelled_s": modelled,
            "download_alone_s": download_alone,
            "ideal_s": ideal,
        }
    finally:
        emu.stop()


def run_sample(scenes: int, time_scale: float, work: Path) -> dict[str, Any]:
    """Microsoft's sample loop, one job per video (PUT, then GET every 5 s), side by side."""
    import httpx

    emu = start_emulator(work / "emu-sample", time_scale)
    period = 5.0 * time_scale
    errors: list[str] = []

    def one(i: int) -> None:
        job_id = f"sample-{i:03d}"
        body = {
            "inputKind": "PlainText",
            "inputs": [{"content": scene_text(i)}],
            "synthesisConfig": {"voice": "en-US-AvaMultilingualNeural"},
            "avatarConfig": {
                "talkingAvatarCharacter": "lisa",
                "talkingAvatarStyle": "casual-sitting",
                "videoCodec": "h264",
            },
        }
        headers = {"Ocp-Apim-Subscription-Key": KEY}
        with httpx.Client(base_url=emu.url, headers=headers, timeout=30) as http:
            put = http.put(f"/avatar/batchsyntheses/{job_id}?{API}", json=body)
            if put.status_code != 201:
                errors.append(f"PUT {job_id}: {put.status_code}")
                return
            while True:
                status = http.get(f"/avatar/batchsyntheses/{job_id}?{API}").json()["status"]
                if status in ("Succeeded", "Failed"):
                    break
                time.sleep(period)

    try:
        started = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(1, scenes + 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        if errors:
            raise RuntimeError("; ".join(errors))
        return {"wall_s": wall, "requests": api_requests(emu.url), "videos": scenes}
    finally:
        emu.stop()


def main() -> None:
    """Run both sides and print the figures (last line: JSON)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--time-scale", type=float, default=0.1)
    parser.add_argument("--poll", type=float, default=20.0, help="modelled seconds")
    parser.add_argument("--pack", choices=("auto", "on", "off"), default="auto")
    args = parser.parse_args()
    pack = args.pack == "on" or (args.pack == "auto" and AZURITE.exists())

    work = Path(tempfile.mkdtemp(prefix="avatarpipe-bench-batch-"))
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    azurite = None
    try:
        if pack:
            (work / "azurite").mkdir()
            azurite, conn = start_azurite(work / "azurite")
            os.environ["AVATARPIPE_BLOB_CONNECTION_STRING"] = conn
        from prefect import flow

        @flow(name="bench-warm-up")
        def warm_up() -> None:
            """Start Prefect's ephemeral API before anything is timed."""

        warm_up()
        ours = run_ours(args.scenes, args.time_scale, args.poll, pack, work)
        sample = run_sample(args.scenes, args.time_scale, work)
    finally:
        if azurite is not None:
            azurite.terminate()
            azurite.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    ours_per_video = ours["requests"] / ours["videos"]
    sample_per_video = sample["requests"] / sample["videos"]
    figures = {
        "scenes": args.scenes,
        "time_scale": args.time_scale,
        "poll_modelled_s": args.poll,
        "packed": pack,
        "jobs": ours["jobs"],
        "makespan_s": round(ours["wall_s"], 2),
        "ideal_s": round(ours["ideal_s"], 2),
        "longest_job_modelled_s": round(ours["longest_job_modelled_s"], 2),
        "download_alone_s": round(ours["download_alone_s"], 3),
        "makespan_over_ideal": round(ours["wall_s"] / ours["ideal_s"], 3),
        "requests_ours": ours["requests"],
        "requests_sample": sample["requests"],
        "requests_per_video": round(ours_per_video, 3),
        "requests_per_video_sample": round(sample_per_video, 3),
        "requests_per_video_vs_sample": round(ours_per_video / sample_per_video, 3),
        "sample_wall_s": round(sample["wall_s"], 2),
    }
    print(
        f"ours: {ours['wall_s']:.1f} s for {args.scenes} videos in {ours['jobs']} job(s), "
        f"ideal {ours['ideal_s']:.1f} s; {ours['requests']} requests; "
        f"sample loop: {sample['requests']} requests"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
