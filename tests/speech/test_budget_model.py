"""The request budget's model on its own: Prefect's limit arithmetic, replayed on a fake clock.

:class:`ModelLimit` does what the Prefect 3.9 server does with a global concurrency limit in
``rate_limit`` mode (``server/models/concurrency_limits_v2.py``): occupancy decays by
``floor(decay * seconds since the last write)``, a grant writes the new occupancy and the time, a
refusal writes neither. ``tests/reliability/test_budget.py`` checks the same against a real
Prefect server and a real emulator.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import pytest

from avatarpipe import progress
from avatarpipe.speech.emulator_admin import max_in_window
from avatarpipe.speech.ratelimit import (
    LimitState,
    RequestPace,
    SharedLimitBudget,
    per_minute_of_limit,
    plan_limit,
    slot_due_at,
)


@dataclass
class ModelLimit:
    """A Prefect global concurrency limit with slot decay (the server's arithmetic)."""

    limit: int
    decay: float
    active: int = 0
    updated: float = 0.0

    def take(self, now: float) -> bool:
        held = max(0, self.active - math.floor(self.decay * (now - self.updated)))
        if held + 1 > self.limit:
            return False
        self.active, self.updated = held + 1, now
        return True

    def state(self) -> LimitState:
        return LimitState(self.limit, self.decay, self.active, self.updated)


def _saturated(limit: ModelLimit, seconds: float, step: float = 0.01) -> list[float]:
    """Grant times when askers try every ``step`` seconds (more demand than the budget)."""
    grants = []
    for i in range(int(seconds / step)):
        now = i * step
        if limit.take(now):
            grants.append(now)
    return grants


def test_pace_is_one_slot_spaced_by_a_minute_and_a_guard() -> None:
    pace = RequestPace(2)
    assert (pace.limit, pace.spacing_s, pace.label()) == (1, 30.5, "2/min")
    assert pace.slot_decay_per_second == pytest.approx(1 / 30.5)
    assert RequestPace(6, window_s=12).spacing_s == pytest.approx(12.2 / 6)
    assert RequestPace(6, window_s=12).label() == "6/12 s"
    for bad in ({"requests": 0}, {"requests": math.inf}, {"requests": 1, "guard_s": -1}):
        with pytest.raises(ValueError):
            RequestPace(**bad)


@pytest.mark.parametrize("n", [2, 6, 60])
def test_one_slot_keeps_every_minute_at_n_and_runs_at_n(n: int) -> None:
    """Arrivals up to the guard after their grant: never over N in a minute, 98 % of N."""
    pace = RequestPace(n)
    grants = _saturated(ModelLimit(pace.limit, pace.slot_decay_per_second), 600)
    rng = random.Random(n)
    arrivals = [t + rng.uniform(0, pace.guard) for t in grants]
    assert max_in_window(arrivals, 60) <= n
    sustained = (len(grants) - 1) / (grants[-1] - grants[0]) * 60
    assert sustained >= 0.98 * n


def test_the_naive_limit_lets_a_minute_hold_almost_twice_the_budget() -> None:
    """``limit N, decay N/60``: a burst of N, then N/60 a second: 2N - 1 in the first minute."""
    grants = _saturated(ModelLimit(6, 6 / 60), 300)
    assert max_in_window(grants, 60) == 11


def test_a_limit_reads_back_as_requests_a_minute() -> None:
    for n in (2, 6, 600):
        pace = RequestPace(n)
        assert per_minute_of_limit(pace.limit, pace.slot_decay_per_second) == pytest.approx(n)
    assert per_minute_of_limit(6, 6 / 60) == 11  # the naive shape: up to 11 in a minute
    assert per_minute_of_limit(10, 50 / 60) == 59


def test_plan_limit_holds_the_first_grant_at_a_new_pace() -> None:
    now = 10_000.0
    two, six = RequestPace(2), RequestPace(6)
    same = LimitState(1, two.slot_decay_per_second, 1, now - 1)
    assert plan_limit(same, two, now) is None
    # Faster: the next grant one new spacing (10.17 s) after the last write, 4 s ago.
    recent = LimitState(1, two.slot_decay_per_second, 1, now - 4)
    held = plan_limit(recent, six, now)
    assert held == 1 and now + held * six.spacing_s >= now - 4 + six.spacing_s
    assert plan_limit(LimitState(1, two.slot_decay_per_second, 1, now - 60), six, now) == 0
    # Slower: a whole window and guard after the last write, so no minute mixes the two.
    fast = LimitState(1, six.slot_decay_per_second, 1, now - 4)
    held = plan_limit(fast, two, now)
    assert held is not None and now + held * two.spacing_s >= now - 4 + 61
    assert now + (held - 1) * two.spacing_s < now - 4 + 61
    # A limit of another shape (an old burst of 10) is treated as slower.
    old = LimitState(10, 50 / 60, 10, now - 1)
    held = plan_limit(old, RequestPace(60), now)
    assert held is not None and held * RequestPace(60).spacing_s >= 60


def test_a_changed_pace_never_mixes_rates_beyond_the_new_budget() -> None:
    """60/min for 5 minutes, then 2/min: every minute holding a 2/min grant holds 2 at most."""
    old, new = RequestPace(60), RequestPace(2)
    limit = ModelLimit(old.limit, old.slot_decay_per_second)
    grants = _saturated(limit, 300)
    changed = 300.0
    held = plan_limit(limit.state(), new, changed)
    assert held is not None
    limit.limit, limit.decay, limit.active, limit.updated = (
        1,
        new.slot_decay_per_second,
        held,
        changed,
    )
    later = [changed + t for t in _saturated_from(limit, changed, 600)]
    every = grants + later
    for at in later:
        assert sum(1 for t in every if at - 60 < t <= at) <= 2


def _saturated_from(limit: ModelLimit, start: float, seconds: float) -> list[float]:
    out = []
    for i in range(int(seconds / 0.01)):
        if limit.take(start + i * 0.01):
            out.append(i * 0.01)
    return out


@dataclass
class WallClock:
    now: float = 50_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def test_shared_budget_sleeps_until_due_and_says_so_once(monkeypatch: Any) -> None:
    clock = WallClock()
    pace = RequestPace(2)
    limit = ModelLimit(pace.limit, pace.slot_decay_per_second)
    calls = {"take": 0, "state": 0}
    notices: list[str] = []

    def take() -> bool:
        calls["take"] += 1
        return limit.take(clock.now)

    def state() -> LimitState:
        calls["state"] += 1
        return limit.state()

    def listen(event: progress.ProgressEvent) -> None:
        if event.stage == "info":
            notices.append(event.detail)

    budget = SharedLimitBudget(
        take, state, pace, clock=clock, sleep=clock.sleep, random=lambda: 0.0
    )
    progress.subscribe(listen)
    try:
        budget.acquire()
        assert calls == {"take": 1, "state": 0} and notices == []
        start = clock.now
        budget.acquire()  # due 30.5 s after the first grant: one refusal, one read, one sleep
        assert calls == {"take": 3, "state": 1}
        assert clock.now - start == pytest.approx(30.505)
        assert notices == ["waiting 31 s for the request budget, 2/min"]
        budget.acquire()  # every request that waits long says so, once
        assert len(notices) == 2 and budget.notices == 2
    finally:
        progress.unsubscribe(listen)
    assert slot_due_at(limit.state()) == pytest.approx(limit.updated + 30.5)


def test_short_waits_stay_quiet() -> None:
    clock = WallClock()
    pace = RequestPace(60)
    limit = ModelLimit(pace.limit, pace.slot_decay_per_second)
    budget = SharedLimitBudget(
        lambda: limit.take(clock.now), limit.state, pace, clock=clock, sleep=clock.sleep
    )
    start = clock.now
    for _ in range(10):
        budget.acquire()
    assert budget.notices == 0
    assert clock.now - start >= 9 * pace.spacing_s


@pytest.mark.parametrize("live", [False, True])
def test_the_notice_reaches_the_terminal(live: bool, capsys: pytest.CaptureFixture[str]) -> None:
    """``avatarpipe run`` prints every notice, plain or above the live bars."""
    from avatarpipe.cli.display import Display

    display = Display(live=live)
    with display.running():
        progress.report("info", "", "waiting 28 s for the request budget, 2/min")
        progress.report("info", "", "waiting 30 s for the request budget, 2/min")
    err = capsys.readouterr().err
    assert "info: waiting 28 s for the request budget, 2/min" in err
    assert "info: waiting 30 s for the request budget, 2/min" in err
