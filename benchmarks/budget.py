"""Videos per hour at Azure's S0 budget of 2 requests a minute: ours against Microsoft's sample.

Modelled time, no real waiting: a simulated clock drives our real code (the batch planner
``plan_jobs``, the in-process budget ``TokenBucket`` at the product's pace, the product's one poll
loop ``wait_until`` with its geometric schedule), against a model of the service:

* **limit**: at most 2 accepted requests in any 60 s (a sliding window, the strictest reading of
  "2 requests per 1 minute"); a refused request gets a 429 and is not counted;
* **jobs**: the emulator's default model (``benchmarks/batch.py``'s ``modelled_job_s``): 5 s in
  the queue, then 3 s of rendering per second of video, the inputs of a job one after another,
  at most 200 jobs rendering at once; a video lasts 0.35 s a word (the emulator's estimate) of
  ``benchmarks/batch.py``'s scenes (6 to 25 words);
* result downloads go to storage (SAS URLs, the blob container) and cost no request.

*Ours* runs ``--videos`` scenes as the product does: plan the jobs (with a blob container, many
inputs per job, up to ``--per-job``; without one, a job per video), create every job through the
budget, then poll with one list request per round (a page per 100 jobs; a GET for a single job)
on the product's schedule (every 20 s at first, then a quarter of the time waited, at most
300 s). *Sample*: Microsoft's Python sample's loop, one video after the other: create the job,
then GET it every 5 s until it is final, then fetch. A refused create or GET is tried again at
the next 5 s tick (the sample itself gives up on a refused create: this is its best case).

Videos per hour are the videos over the modelled time until the last one is fetched.

Run: ``uv run python benchmarks/budget.py [--videos 1000] [--per-job 100]``. The last line
printed is JSON.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch import modelled_job_s, scene_text  # noqa: E402 - the batch benchmark's pieces

from avatarpipe.batch.plan import JobOptions, PlannedJob, VideoInput, plan_jobs  # noqa: E402
from avatarpipe.batch.wait import wait_until  # noqa: E402
from avatarpipe.errors import WaitTimeoutError  # noqa: E402
from avatarpipe.settings import AZURE_REQUESTS_PER_MINUTE  # noqa: E402
from avatarpipe.speech.models import BatchAvatarConfig, BatchSynthesisConfig  # noqa: E402
from avatarpipe.speech.ratelimit import TokenBucket  # noqa: E402

SECONDS_PER_WORD = 0.35  # the emulator's estimate (emulator/placeholder.py)
MAX_RUNNING = 200  # jobs rendering at once per resource (Azure)
PAGE = 100  # jobs per list page
SAMPLE_PERIOD_S = 5.0  # the sample's fixed poll interval
POLL_INTERVAL_S = 20.0  # the product's default AVATARPIPE_POLL_INTERVAL_S


@dataclass
class Clock:
    """Modelled seconds: they pass only when something sleeps."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@dataclass
class Service:
    """The service's request limit and render model."""

    clock: Clock
    per_minute: float = AZURE_REQUESTS_PER_MINUTE
    accepted: deque[float] = field(default_factory=deque)
    every_accepted: list[float] = field(default_factory=list)
    refused: int = 0
    done_at: dict[str, float] = field(default_factory=dict)
    running: list[float] = field(default_factory=list)  # end times of rendering jobs (a heap)

    def request(self) -> bool:
        """One request now: accepted unless 2 were accepted in the last 60 s."""
        now = self.clock()
        while self.accepted and self.accepted[0] <= now - 60.0:
            self.accepted.popleft()
        if len(self.accepted) >= self.per_minute:
            self.refused += 1
            return False
        self.accepted.append(now)
        self.every_accepted.append(now)
        return True

    def create(self, job_id: str, video_s: float) -> None:
        """A job accepted now: it renders once one of the 200 slots is free."""
        start = self.clock()
        while len(self.running) >= MAX_RUNNING:
            start = max(start, heapq.heappop(self.running))
        end = start + modelled_job_s(round(video_s * 1000), 1.0)
        heapq.heappush(self.running, end)
        self.done_at[job_id] = end

    def final(self, job_id: str) -> bool:
        """Whether the job is done by now."""
        return self.done_at[job_id] <= self.clock()


def video_s(i: int) -> float:
    """Seconds of video of scene ``i``."""
    return max(1.0, len(scene_text(i).split()) * SECONDS_PER_WORD)


def plan(videos: int, pack: bool, per_job: int) -> list[PlannedJob]:
    """The product's jobs for ``videos`` scenes."""
    options = JobOptions(
        avatar=BatchAvatarConfig(
            talking_avatar_character="lisa", talking_avatar_style="casual-sitting"
        ),
        synthesis=BatchSynthesisConfig(voice="en-US-AvaMultilingualNeural"),
        label="bench",
    )
    inputs = [
        VideoInput(key=f"scene-{i:04d}", content=scene_text(i), input_kind="PlainText")
        for i in range(1, videos + 1)
    ]
    return plan_jobs(inputs, options, pack=pack, max_inputs_per_job=per_job)


def run_ours(videos: int, pack: bool, per_job: int) -> dict[str, float]:
    """Plan, create through the budget, poll on the product's schedule; the modelled figures."""
    clock = Clock()
    service = Service(clock)
    budget = TokenBucket(AZURE_REQUESTS_PER_MINUTE, clock=clock, sleep=clock.sleep)

    def call() -> None:
        budget.acquire()
        if not service.request():
            raise AssertionError(f"ours was refused a request at {clock():.1f} s")

    jobs = plan(videos, pack, per_job)
    for job in jobs:
        call()
        seconds = sum(video_s(int(item.key.split("-")[1])) for item in job.inputs)
        service.create(job.job_id, seconds)
    pending = {job.job_id for job in jobs}

    def round_() -> bool | None:
        for _ in range(1 if len(pending) == 1 else math.ceil(len(jobs) / PAGE)):
            call()
        pending.difference_update({j for j in pending if service.final(j)})
        return True if not pending else None

    def timed_out() -> WaitTimeoutError:
        return WaitTimeoutError("modelled run did not finish")

    wait_until(
        round_,
        interval=POLL_INTERVAL_S,
        timeout=30 * 24 * 3600,
        timed_out=timed_out,
        sleep=clock.sleep,
        clock=clock,
    )
    return {
        "jobs": len(jobs),
        "hours": clock() / 3600,
        "videos_per_hour": videos / (clock() / 3600),
        "requests": len(service.every_accepted),
        "refused": service.refused,
    }


def run_sample(videos: int) -> dict[str, float]:
    """Microsoft's sample, one video after the other; the modelled figures."""
    clock = Clock()
    service = Service(clock)
    for i in range(1, videos + 1):
        while not service.request():  # create
            clock.sleep(SAMPLE_PERIOD_S)
        job_id = f"sample-{i}"
        service.create(job_id, video_s(i))
        while True:  # GET every 5 s until final
            clock.sleep(SAMPLE_PERIOD_S)
            if service.request() and service.final(job_id):
                break
    return {
        "jobs": videos,
        "hours": clock() / 3600,
        "videos_per_hour": videos / (clock() / 3600),
        "requests": len(service.every_accepted),
        "refused": service.refused,
    }


def main() -> None:
    """Run the three models and print the figures (the last line is JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--per-job", type=int, default=100)
    args = parser.parse_args()

    sample = run_sample(args.videos)
    single = run_ours(args.videos, pack=False, per_job=1)
    packed = run_ours(args.videos, pack=True, per_job=args.per_job)
    for name, figures in (("sample", sample), ("ours, no container", single), ("ours", packed)):
        print(
            f"{name:>18}: {figures['videos_per_hour']:8.1f} videos/h "
            f"({args.videos} videos in {figures['hours']:.2f} h, {figures['jobs']} jobs, "
            f"{figures['requests']} requests, {figures['refused']} refused)"
        )
    result = {
        "videos": args.videos,
        "requests_per_minute": AZURE_REQUESTS_PER_MINUTE,
        "per_job": args.per_job,
        "sample_videos_per_hour": round(sample["videos_per_hour"], 1),
        "ours_no_container_videos_per_hour": round(single["videos_per_hour"], 1),
        "ours_container_videos_per_hour": round(packed["videos_per_hour"], 1),
        "ratio_no_container": round(single["videos_per_hour"] / sample["videos_per_hour"], 2),
        "ratio_container": round(packed["videos_per_hour"] / sample["videos_per_hour"], 2),
        "sample_refused": sample["refused"],
        "ours_refused": single["refused"] + packed["refused"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
