"""Request budgets: every HTTP attempt against the Speech service first takes a slot.

Azure documents a tiny REST rate for batch avatar: "2 requests per 1 minute" on S0 (the Speech
service's quotas and limits page, "Batch text to speech avatar - REST API limit"). The budget is
``N`` requests a minute, shared by every caller: in one process (:class:`TokenBucket`) or, in the
flows, by every run on a Prefect server (a Prefect global concurrency limit driven by
:class:`SharedLimitBudget`). Both follow the same :class:`RequestPace`.

The model: one slot, a fixed spacing
------------------------------------
A Prefect global concurrency limit with ``limit`` slots and ``slot_decay_per_second = d`` is a
token bucket of capacity ``L = limit`` refilled at ``d`` tokens a second. Its server (3.9,
``server/models/concurrency_limits_v2.py``) keeps ``active_slots`` ``a`` and the time ``u`` of
the last write; at ``t`` a grant needs ``max(0, a - floor(d (t - u))) + 1 <= L`` and then writes
``a := that + 1, u := t``. A refused attempt changes neither (checked against 3.9.1).

*Bound.* Let ``A(t)`` be the continuous occupancy (``+1`` at each grant, ``-d`` a second, never
below 0). The server's floored occupancy is never below it, so every grant happens at
``A(t-) <= L - 1``. Take ``k`` grants at ``t1 < ... < tk``: between the first and the last,
``A`` gains ``k - 1`` and loses at most ``d (tk - t1)``, so ``k - 1 - d (tk - t1) <= L - 1``:

    k <= L + d * (tk - t1)

In any window shorter than ``W`` this gives ``k < L + d W``. With ``L = N`` and ``d = N / 60``
(the naive setting) a window holds up to ``2N - 1``: a burst of ``N``, then ``N`` more. Any pair
with ``L + 60 d <= N + 1`` keeps every 60 s window at ``N`` or fewer, and its long-run rate is
``d``, i.e. ``60 d = N + 1 - L`` a minute. The rate is highest at **L = 1, d = N / 60**: grants
at least ``60 / N`` s apart, exactly ``N`` in any 60 s window and ``N`` a minute sustained. (The
old ``L = 10``-style bursts cost throughput: at ``L = 2`` a budget of 6 gets 5 a minute, 83 %.)

*Guard.* The service counts arrivals, not grants. A request leaves a moment after its grant; if
that delay varies by up to ``G``, arrivals in a window of ``W`` come from grants within
``W + G``. So the pace spaces grants by ``(W + G) / N`` with ``G = W / 60`` (1 s a minute):
``k < 1 + d (W + G) = N + 1`` for every arrival window of ``W``, and the sustained rate is
``N * 60 / 61``, 98.4 % of ``N``.

*Changing the rate.* The shared limit is rewritten to the configured pace (the setting wins).
Speeding up keeps the guarantee as long as the first grant at the new pace comes ``(W + G) / N``
after the last grant; slowing down could leave ``N_old > N_new`` earlier grants in the window,
so the first grant at the slower pace waits until a full ``W + G`` after the last old one.
:func:`plan_limit` computes the ``active_slots`` that enforce this on the server.

*Waiting.* Prefect's own ``rate_limit()`` retries after the server's ``Retry-After``: a Poisson
draw around ``(1 + denied_slots) / d``, which grows with the number of waiters, so it lags far
behind the slot (at 2 a minute, often a whole interval). :class:`SharedLimitBudget` reads the
limit after a refusal and sleeps until the slot is due (:func:`slot_due_at`): the server still
decides every grant, the client only decides when to ask.
"""

from __future__ import annotations

import logging
import math
import random as _random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import httpx

from avatarpipe import progress

__all__ = [
    "NOTICE_AFTER_S",
    "LimitState",
    "RateBudget",
    "RequestPace",
    "SharedLimitBudget",
    "TokenBucket",
    "UnlimitedBudget",
    "is_slot_refusal",
    "per_minute_of_limit",
    "plan_limit",
    "slot_due_at",
]

log = logging.getLogger(__name__)


def is_slot_refusal(exc: BaseException) -> bool:
    """Whether a shared limit's server refused a slot for now (HTTP 423 Locked), not an error.

    Prefect's API answers an increment of a rate limit that has no free slot with 423; its
    client raises that as :class:`httpx.HTTPStatusError`.
    """
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == httpx.codes.LOCKED


NOTICE_AFTER_S = 5.0
"""A request that waits longer than this on the budget says so (once)."""


@runtime_checkable
class RateBudget(Protocol):
    """Something that hands out request tokens, blocking until one is available."""

    def acquire(self, cost: float = 1.0) -> None:
        """Block until ``cost`` tokens are available, then take them.

        Args:
            cost: How many tokens the request costs.
        """
        ...


class UnlimitedBudget:
    """A budget that never waits (tests, the in-process emulator)."""

    def acquire(self, cost: float = 1.0) -> None:
        """Return at once.

        Args:
            cost: Ignored.
        """
        return None


@dataclass(frozen=True)
class RequestPace:
    """``requests`` per ``window_s``, as one slot granted every :attr:`spacing_s` seconds.

    See the module docstring for why one slot and this spacing give at most ``requests`` in any
    window (of arrivals, within the guard) at 98 % of the rate.

    Attributes:
        requests: Requests allowed in any window (``AVATARPIPE_REQUESTS_PER_MINUTE``).
        window_s: The window they are counted in: 60 s (tests use a shorter one).
        guard_s: Added to the window against the spread between a grant and the request's
            arrival; ``None`` means ``window_s / 60`` (1 s a minute).

    Raises:
        ValueError: A figure is not a positive finite number (or the guard is negative).
    """

    requests: float
    window_s: float = 60.0
    guard_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("requests", "window_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value}")
        if self.guard_s is not None and not (math.isfinite(self.guard_s) and self.guard_s >= 0):
            raise ValueError(f"guard_s must be a finite number >= 0, got {self.guard_s}")

    @property
    def guard(self) -> float:
        """The guard in seconds."""
        return self.window_s / 60.0 if self.guard_s is None else self.guard_s

    @property
    def spacing_s(self) -> float:
        """Seconds between two grants: ``(window + guard) / requests``."""
        return (self.window_s + self.guard) / self.requests

    @property
    def limit(self) -> int:
        """Slots of the shared limit: one."""
        return 1

    @property
    def slot_decay_per_second(self) -> float:
        """Decay of the shared limit: one slot per :attr:`spacing_s`."""
        return 1.0 / self.spacing_s

    def label(self) -> str:
        """The budget as people read it: ``2/min``, or ``6/12 s`` for another window."""
        count = f"{self.requests:g}"
        return f"{count}/min" if self.window_s == 60.0 else f"{count}/{self.window_s:g} s"

    def matches(self, limit: int, slot_decay_per_second: float) -> bool:
        """Whether a limit already has this pace's shape.

        Args:
            limit: The limit's slots.
            slot_decay_per_second: The limit's decay.
        """
        return limit == self.limit and math.isclose(
            slot_decay_per_second, self.slot_decay_per_second, rel_tol=1e-9
        )


@dataclass(frozen=True)
class LimitState:
    """What a Prefect global concurrency limit holds (as its API returns it).

    Attributes:
        limit: Slots.
        slot_decay_per_second: Decay.
        active_slots: Occupied slots as last written (before the decay since ``updated``).
        updated: When it was last written (epoch seconds, the server's clock).
    """

    limit: int
    slot_decay_per_second: float
    active_slots: int
    updated: float


def slot_due_at(state: LimitState) -> float:
    """When the limit will grant one slot (epoch seconds), if nobody else takes it first.

    The server grants when ``active_slots - floor(decay * (t - updated)) <= limit - 1``.

    Args:
        state: The limit as read.

    Returns:
        ``updated`` plus the time to decay the excess; ``updated`` when a slot is free.
    """
    excess = state.active_slots - state.limit + 1
    if excess <= 0 or state.slot_decay_per_second <= 0:
        return state.updated
    return state.updated + excess / state.slot_decay_per_second


def per_minute_of_limit(limit: int, slot_decay_per_second: float) -> float:
    """The requests a minute a limit stands for (the inverse of :class:`RequestPace`).

    Args:
        limit: The limit's slots.
        slot_decay_per_second: Its decay.

    Returns:
        For this pace's shape (one slot), ``decay * 61``: the ``N`` it was made from. For any
        other shape, the most requests it lets into one minute: ``ceil(limit + 60 * decay) - 1``
        (from the bound in the module docstring).
    """
    if limit == 1:
        return slot_decay_per_second * (60.0 + 1.0)
    return float(math.ceil(limit + 60.0 * slot_decay_per_second - 1e-9) - 1)


def plan_limit(state: LimitState, pace: RequestPace, now: float) -> int | None:
    """The ``active_slots`` to write so that an existing limit takes ``pace`` safely.

    Args:
        state: The limit as it is.
        pace: The configured pace.
        now: The current time (epoch seconds).

    Returns:
        ``None`` when the limit already has the pace's shape; otherwise the active slots to set
        together with the new limit and decay. They hold the first grant at the new pace until
        ``spacing`` after the last write (faster pace), or a whole window and guard after it
        (slower pace, or a limit of another shape): no window mixes old grants with new ones
        beyond the new budget.
    """
    if pace.matches(state.limit, state.slot_decay_per_second):
        return None
    old_spacing = 1.0 / state.slot_decay_per_second if state.slot_decay_per_second > 0 else 0.0
    faster = state.limit == 1 and old_spacing > 0 and pace.spacing_s <= old_spacing
    hold = pace.spacing_s if faster else pace.window_s + pace.guard
    due = state.updated + hold  # every earlier grant was written by `updated`
    return max(0, math.ceil((due - now) / pace.spacing_s - 1e-9))


class SharedLimitBudget:
    """A budget whose slots a shared limit grants (:mod:`flows.connections` wires Prefect's).

    Each slot is asked for with ``take``; after a refusal the limit is read with ``state`` and
    the caller sleeps until the slot is due (:func:`slot_due_at`, clamped to what the decay
    allows), plus a few milliseconds and a random spread of at most 5 % of the spacing (0.25 s),
    then asks again. Callers of one process ask one at a time (``queue``): concurrent writes to a
    SQLite-backed Prefect server stall each other for seconds. A request that waits
    longer than :data:`NOTICE_AFTER_S` says so once, through :func:`avatarpipe.progress.report`
    (``info``) and the log: "waiting 28 s for the request budget, 2/min".

    Args:
        take: Try to take one slot: ``True`` when granted, ``False`` when refused.
        state: Read the limit.
        pace: The pace the limit was set to (named in the notice).
        clock: Wall clock in epoch seconds, comparable with ``LimitState.updated``.
        sleep: Sleep function (injectable for tests).
        random: Uniform draw in [0, 1) that spreads the askers of several processes.
        queue: The lock that lets one caller at a time ask (share one per process and limit;
            a new one by default).
        notice_after_s: Waits longer than this are reported.
    """

    def __init__(
        self,
        take: Callable[[], bool],
        state: Callable[[], LimitState],
        pace: RequestPace,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        queue: threading.Lock | None = None,
        notice_after_s: float = NOTICE_AFTER_S,
    ) -> None:
        self._take = take
        self._state = state
        self.pace = pace
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._queue = queue or threading.Lock()
        self.notice_after_s = notice_after_s
        self.notices = 0

    def acquire(self, cost: float = 1.0) -> None:
        """Take ``max(1, round(cost))`` slots, one after the other, waiting as needed.

        Args:
            cost: Slots to take (1 per HTTP attempt).

        Raises:
            ValueError: ``cost`` is negative.
        """
        if cost < 0:
            raise ValueError(f"cost must not be negative, got {cost}")
        for _ in range(max(1, round(cost))):
            self._acquire_one()

    def _acquire_one(self) -> None:
        with self._queue:  # one asker per process and limit: the others queue here
            started = self._clock()
            noticed = False
            while not self._take():
                state = self._state()
                now = self._clock()
                decay = state.slot_decay_per_second
                longest = state.active_slots / decay if decay > 0 else self.pace.spacing_s
                wait = min(max(slot_due_at(state) - now, 0.0), longest)
                # A little after the slot is due: past the server's rounding, and spread so
                # that the askers of several processes seldom write to the limit at once.
                spread = min(0.25, 0.05 * self.pace.spacing_s)
                wait += 0.005 + self._random() * spread
                if not noticed and (now - started) + wait > self.notice_after_s:
                    noticed = True
                    self._notice(wait)
                self._sleep(wait)

    def _notice(self, wait: float) -> None:
        self.notices += 1
        message = f"waiting {wait:.0f} s for the request budget, {self.pace.label()}"
        log.info("%s", message)
        progress.report("info", "", message)


class TokenBucket:
    """A thread-safe in-process budget at ``requests_per_minute`` (one process's requests only).

    By default it follows :class:`RequestPace`: one token, refilled every ``61 / N`` s, so no
    60 s window holds more than ``N`` requests. With a larger ``burst`` the refill slows to keep
    that bound (``burst + rate * 61 s = N + 1``; see the module docstring).

    Tokens are reserved under a lock and the wait happens outside it, so concurrent callers are
    served in arrival order and none of them holds the lock while sleeping. A request costing more
    than the bucket holds is still served: the bucket goes into debt and later callers wait it off.

    Args:
        requests_per_minute: Requests allowed in any minute.
        burst: Bucket capacity (tokens available at once), 1 by default, at most the rate.
        clock: Monotonic clock in seconds (injectable for tests).
        sleep: Sleep function (injectable for tests).

    Raises:
        ValueError: The rate is not positive, or the burst is not between 1 and the rate.
    """

    def __init__(
        self,
        requests_per_minute: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not requests_per_minute > 0:
            raise ValueError(f"requests_per_minute must be positive, got {requests_per_minute}")
        pace = RequestPace(requests_per_minute)
        capacity = 1.0 if burst is None else float(burst)
        if not 1.0 <= capacity <= max(1.0, requests_per_minute):
            raise ValueError(f"burst must be between 1 and the rate, got {burst}")
        self.requests_per_minute = float(requests_per_minute)
        self.capacity = capacity
        self._rate_per_s = (pace.requests + 1.0 - capacity) / (pace.window_s + pace.guard)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._stamp = clock()

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._stamp)
        self._tokens = min(self.capacity, self._tokens + elapsed * self._rate_per_s)
        self._stamp = now

    @property
    def available(self) -> float:
        """Tokens available right now (negative while in debt)."""
        with self._lock:
            self._refill(self._clock())
            return self._tokens

    def acquire(self, cost: float = 1.0) -> None:
        """Take ``cost`` tokens, sleeping until the bucket has refilled enough.

        Args:
            cost: Tokens to take (1 per HTTP attempt).

        Raises:
            ValueError: ``cost`` is negative.
        """
        if cost < 0:
            raise ValueError(f"cost must not be negative, got {cost}")
        with self._lock:
            self._refill(self._clock())
            self._tokens -= cost
            wait = -self._tokens / self._rate_per_s if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
