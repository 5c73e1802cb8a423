"""RetryPolicy and TokenBucket on their own, with a fake clock."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from avatarpipe.errors import (
    NotFoundError,
    RateLimitedError,
    TransientServiceError,
)
from avatarpipe.speech import RetryPolicy, TokenBucket, UnlimitedBudget
from avatarpipe.speech.ratelimit import RateBudget
from avatarpipe.speech.retry import parse_retry_after

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=lambda: NOW) == seconds


def test_backoff_is_exponential_jittered_and_capped() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=10.0, jitter=0.5, rng=random.Random(7))
    for attempt in range(1, 9):
        raw = 2.0 ** (attempt - 1)
        for _ in range(50):
            delay = policy.backoff(attempt)
            assert min(10.0, raw * 0.5) <= delay <= min(10.0, raw * 1.5)
    spread = {round(policy.backoff(3), 6) for _ in range(20)}
    assert len(spread) > 10, "jitter spreads the waits"


def test_run_returns_and_does_not_retry_permanent(clock: Any) -> None:
    policy = RetryPolicy(sleep=clock.sleep, clock=clock)
    calls = []

    def not_found() -> None:
        calls.append(1)
        raise NotFoundError("GET /x: 404 NotFound", status_code=404)

    with pytest.raises(NotFoundError):
        policy.run(not_found)
    assert calls == [1] and clock.sleeps == []
    assert policy.run(lambda: 42) == 42


def test_run_retry_after_capped_by_remaining_total(clock: Any) -> None:
    policy = RetryPolicy(max_total_s=20.0, max_delay_s=60.0, sleep=clock.sleep, clock=clock)
    calls = []

    def limited() -> None:
        calls.append(clock.now)
        clock.now += 1.0  # each attempt takes a second
        raise RateLimitedError("429", retry_after=15.0, status_code=429)

    with pytest.raises(RateLimitedError):
        policy.run(limited)
    # 1 s + wait 15, 1 s + wait min(15, 20 - 17 = 3), 1 s -> out of time
    assert clock.sleeps == [15.0, 3.0]
    assert len(calls) == 3


def test_policy_validates_bounds() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2)


def test_transient_error_sets_note(clock: Any) -> None:
    policy = RetryPolicy(max_attempts=2, sleep=clock.sleep, clock=clock, jitter=0)

    def boom() -> None:
        raise TransientServiceError("GET /x: 500", status_code=500)

    with pytest.raises(TransientServiceError) as info:
        policy.run(boom)
    assert "gave up after 2 attempt(s)" in info.value.__notes__[0]


def test_token_bucket_spaces_requests_by_the_pace(clock: Any) -> None:
    bucket = TokenBucket(2, clock=clock, sleep=clock.sleep)
    assert bucket.capacity == 1.0
    bucket.acquire()
    assert clock.sleeps == []
    bucket.acquire()  # 2/min: one every (60 + 1) / 2 s
    assert clock.sleeps == [pytest.approx(30.5)]
    clock.now += 600  # long idle: one token, never a burst
    bucket.acquire()
    assert len(clock.sleeps) == 1
    bucket.acquire()
    assert clock.sleeps[-1] == pytest.approx(30.5)


def test_token_bucket_burst_slows_the_refill(clock: Any) -> None:
    """A burst of B leaves N + 1 - B a minute: still never more than N in any minute."""
    bucket = TokenBucket(2, burst=2, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.acquire()
    assert clock.sleeps == []
    bucket.acquire()
    assert clock.sleeps == [pytest.approx(61.0)]


def test_token_bucket_validation(clock: Any) -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
    with pytest.raises(ValueError):
        TokenBucket(2, burst=3)
    with pytest.raises(ValueError):
        TokenBucket(1, clock=clock).acquire(-1)


def test_token_bucket_is_thread_safe() -> None:
    """Concurrent acquires never lose a reservation: the debt is exactly what was taken."""
    frozen = 500.0
    waits: list[float] = []
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    bucket = TokenBucket(60, burst=5, clock=lambda: frozen, sleep=sleep)
    threads = [
        threading.Thread(target=lambda: [bucket.acquire() for _ in range(50)]) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bucket.available == pytest.approx(5 - 400)
    # each caller gets its own slot: the k-th in debt waits k tokens' refill (56 per 61 s)
    assert sorted(waits) == pytest.approx([k * 61 / 56 for k in range(1, 396)])


def test_budgets_satisfy_protocol() -> None:
    assert isinstance(TokenBucket(1), RateBudget)
    assert isinstance(UnlimitedBudget(), RateBudget)
    UnlimitedBudget().acquire(5)
