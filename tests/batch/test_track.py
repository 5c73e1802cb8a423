"""Submitting and polling against the real emulator over HTTP; only time is faked."""

from __future__ import annotations

from typing import Any

import pytest

from avatarpipe.batch.plan import JobOptions, VideoInput, plan_jobs
from avatarpipe.batch.track import JobLookup, submit_jobs, wait_for_jobs
from avatarpipe.errors import WaitTimeoutError
from avatarpipe.speech.client import SpeechClient
from avatarpipe.speech.models import BatchAvatarConfig, BatchSynthesisConfig, InputKind, Status


def _jobs(n: int) -> list[Any]:
    options = JobOptions(
        avatar=BatchAvatarConfig(
            talking_avatar_character="lisa", talking_avatar_style="casual-sitting"
        ),
        synthesis=BatchSynthesisConfig(voice="en-US-AvaMultilingualNeural"),
        label="track",
    )
    return plan_jobs(
        [VideoInput(f"s{i}", f"Scene {i}.", InputKind.PLAIN_TEXT) for i in range(n)], options
    )


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_submit_looks_up_first_and_a_second_submit_puts_nothing(make_emu: Any) -> None:
    emu = make_emu()
    jobs = _jobs(5)
    with SpeechClient(emu.url, key="k") as client:
        lookup = JobLookup(client)
        created: list[bool] = []
        submit_jobs(client, lookup, jobs, on_submitted=lambda _j, _v, c: created.append(c))
        assert created == [True] * 5
        again: list[bool] = []
        views = submit_jobs(
            client, JobLookup(client), jobs, on_submitted=lambda _j, _v, c: again.append(c)
        )
        assert again == [False] * 5
        assert set(views) == {j.job_id for j in jobs}
    stats = emu.stats()
    assert all(count == 1 for count in stats["puts_by_job_id"].values())
    # Each submit looked all five ids up with one list call, not five GETs.
    assert stats["requests_by_route"]["GET /avatar/batchsyntheses"]["200"] == 2
    assert "GET /avatar/batchsyntheses/{id}" not in stats["requests_by_route"]


def test_polling_is_geometric_and_times_out_with_a_continuation_token(make_emu: Any) -> None:
    emu = make_emu(time_scale=1.0, queue_delay_s=3600.0)  # the jobs stay NotStarted
    jobs = _jobs(3)
    fake = FakeTime()
    with SpeechClient(emu.url, key="k") as client:
        lookup = JobLookup(client)
        submit_jobs(client, lookup, jobs)
        before = lookup.requests
        with pytest.raises(WaitTimeoutError) as info:
            wait_for_jobs(
                lookup,
                [j.job_id for j in jobs],
                poll_interval_s=20.0,
                timeout_s=1800.0,
                sleep=fake.sleep,
                clock=fake.clock,
            )
    assert set(info.value.continuation_token.split(",")) == {j.job_id for j in jobs}  # type: ignore[union-attr]
    sleeps = fake.sleeps
    assert sleeps[:4] == [20.0, 20.0, 20.0, 20.0]
    for waited, interval in zip([sum(sleeps[:i]) for i in range(len(sleeps))], sleeps, strict=True):
        assert interval <= max(20.0, waited / 4) + 1e-6  # never later than 25 % after a finish
        assert interval <= 300.0
    polls = lookup.requests - before
    assert polls == len(sleeps) + 1  # one lookup per round, the last one at the deadline
    assert polls < 1800 / 20 / 3, "a 30-minute wait costs far fewer polls than a fixed 20 s loop"


def test_waiting_returns_final_jobs_and_reports_changes(make_emu: Any) -> None:
    emu = make_emu()
    jobs = _jobs(4)
    seen: list[tuple[str, Status | None]] = []
    with SpeechClient(emu.url, key="k") as client:
        lookup = JobLookup(client)
        submit_jobs(client, lookup, jobs)
        outcome = wait_for_jobs(
            lookup,
            [j.job_id for j in jobs],
            poll_interval_s=0.1,
            timeout_s=60,
            on_change=lambda job: seen.append((job.id or "", job.status)),
        )
    assert set(outcome.jobs) == {j.job_id for j in jobs}
    assert all(job.status == Status.SUCCEEDED for job in outcome.jobs.values())
    assert not outcome.vanished
    assert {job_id for job_id, status in seen if status == Status.SUCCEEDED} == set(outcome.jobs)
