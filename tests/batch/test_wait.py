"""The job poll loop against the real emulator over HTTP; only time is faked."""

from __future__ import annotations

from typing import Any

import pytest

from avatarpipe.batch.submit import JobLookup, submit_jobs
from avatarpipe.batch.wait import wait_for_jobs, wait_until
from avatarpipe.errors import TransientServiceError, WaitTimeoutError
from avatarpipe.speech.models import Status


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_polling_is_geometric_and_times_out_with_a_continuation_token(
    make_emu: Any, make_jobs: Any, batch_client: Any
) -> None:
    emu = make_emu(time_scale=1.0, queue_delay_s=3600.0)  # the jobs stay NotStarted
    jobs = make_jobs(3)
    fake = FakeTime()
    with batch_client(emu.url) as client:
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


def test_waiting_returns_final_jobs_and_reports_changes(
    make_emu: Any, make_jobs: Any, batch_client: Any
) -> None:
    emu = make_emu()
    jobs = make_jobs(4)
    seen: list[tuple[str, Status | None]] = []
    with batch_client(emu.url) as client:
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


def test_wait_until_backs_off_and_raises_the_callers_timeout() -> None:
    fake = FakeTime()
    calls: list[float] = []

    def never() -> str | None:
        calls.append(fake.now)
        return None

    with pytest.raises(WaitTimeoutError, match="still deploying"):
        wait_until(
            never,
            interval=1.0,
            timeout=600.0,
            timed_out=lambda: WaitTimeoutError("still deploying"),
            sleep=fake.sleep,
            clock=fake.clock,
        )
    assert fake.sleeps[:4] == [1.0, 1.0, 1.0, 1.0]
    assert max(fake.sleeps) <= 15.0  # the default longest interval: 15 x interval
    assert fake.now == pytest.approx(600.0)
    assert len(calls) < 600 / 1.0 / 4, "a long wait costs far fewer checks than a fixed loop"


def test_wait_until_returns_the_result_and_tolerates_some_transient_failures() -> None:
    fake = FakeTime()
    answers: list[Any] = [TransientServiceError("503"), None, TransientServiceError("503"), "ok"]

    def check() -> str | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    kwargs: dict[str, Any] = {
        "interval": 2.0,
        "timeout": 60.0,
        "timed_out": lambda: WaitTimeoutError("late"),
        "sleep": fake.sleep,
        "clock": fake.clock,
    }
    assert wait_until(check, max_failed_checks=2, **kwargs) == "ok"
    assert fake.sleeps == [2.0, 2.0, 2.0]
    answers[:] = [TransientServiceError("503"), TransientServiceError("503")]
    with pytest.raises(TransientServiceError):
        wait_until(check, max_failed_checks=2, **kwargs)
    answers[:] = [TransientServiceError("503")]
    with pytest.raises(TransientServiceError):
        wait_until(check, **kwargs)  # by default the first failure is raised
