"""Request budgets: every HTTP attempt against the Speech service first takes a token.

Azure documents a tiny REST rate for batch avatar (2 requests/minute on S0), so requests are a
budget shared by every caller in a process (:class:`TokenBucket`) or, in the flows, across processes
(a Prefect global concurrency limit behind the same :class:`RateBudget` protocol).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["RateBudget", "TokenBucket", "UnlimitedBudget"]


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


class TokenBucket:
    """A thread-safe token bucket refilled at ``requests_per_minute``.

    Tokens are reserved under a lock and the wait happens outside it, so concurrent callers are
    served in arrival order and none of them holds the lock while sleeping. A request costing more
    than the bucket holds is still served: the bucket goes into debt and later callers wait it off.

    Args:
        requests_per_minute: Long-run rate.
        burst: Bucket capacity (tokens available at once). Defaults to ten seconds' worth of
            the rate, at least 1.
        clock: Monotonic clock in seconds (injectable for tests).
        sleep: Sleep function (injectable for tests).

    Raises:
        ValueError: The rate or the burst is not positive.
    """

    def __init__(
        self,
        requests_per_minute: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive, got {requests_per_minute}")
        capacity = max(1.0, requests_per_minute / 6.0) if burst is None else burst
        if capacity <= 0:
            raise ValueError(f"burst must be positive, got {burst}")
        self.requests_per_minute = float(requests_per_minute)
        self.capacity = float(capacity)
        self._rate_per_s = self.requests_per_minute / 60.0
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
