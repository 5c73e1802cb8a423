"""Rate limiting and seeded fault injection for the emulator's Azure API routes."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from avatarpipe.emulator.config import FaultConfig

__all__ = ["FaultInjector", "InjectedFault", "RateLimiter"]

FaultKind = Literal["429", "500", "503", "reset", "slow"]


class _Window:
    """At most ``count`` requests in any ``window_s``: ``N`` in any 60 s for ``N`` a minute.

    A sliding window is the strictest reading of Azure's "2 requests per 1 minute": a client that
    keeps to it keeps to a fixed window or a token bucket of the same figure as well. Below one a
    minute, one request per ``60 / N`` seconds.
    """

    def __init__(self, per_minute: float) -> None:
        self.count = max(1, math.floor(per_minute))
        self.window_s = 60.0 * self.count / per_minute
        self.times: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until a request fits (0 when one fits now)."""
        while self.times and self.times[0] <= now - self.window_s:
            self.times.popleft()
        if len(self.times) < self.count:
            return 0.0
        return self.times[0] + self.window_s - now

    def take(self, now: float) -> None:
        """Count a request at ``now``."""
        self.times.append(now)


class RateLimiter:
    """Requests-per-minute budgets: one for all Azure API calls and one per operation kind.

    A request must fit in the overall window and in its kind's window; when either is full it is
    refused with the seconds to wait (sent as ``Retry-After``, an emulator extension:
    Azure does not promise the header).
    """

    def __init__(self, per_minute: float | None, per_kind: dict[str, float]) -> None:
        """Create the windows.

        Args:
            per_minute: Overall limit, ``None`` for none.
            per_kind: Limits per operation kind.
        """
        self._lock = threading.Lock()
        self._all = _Window(per_minute) if per_minute else None
        self._kinds = {kind: _Window(rate) for kind, rate in per_kind.items() if rate > 0}

    def check(self, kind: str) -> int | None:
        """Spend a request of ``kind``: ``None`` if allowed, else the ``Retry-After`` seconds."""
        with self._lock:
            windows = [w for w in (self._all, self._kinds.get(kind)) if w is not None]
            now = time.monotonic()
            # Check every window first so that a refused request counts in none of them.
            wait = max((window.wait(now) for window in windows), default=0.0)
            if wait > 0:
                return max(1, math.ceil(wait))
            for window in windows:
                window.take(now)
            return None


@dataclass(frozen=True)
class InjectedFault:
    """A fault chosen for one request.

    Attributes:
        kind: ``429``, ``500``, ``503``, ``reset`` or ``slow``.
        delay_s: For ``slow``, the delay before the request is handled.
    """

    kind: FaultKind
    delay_s: float = 0.0


class FaultInjector:
    """Draws faults from one seeded generator, so a run is reproducible."""

    def __init__(self, config: FaultConfig) -> None:
        """Seed the generator.

        Args:
            config: The fault probabilities and seed.
        """
        self._lock = threading.Lock()
        self.config = config
        self._rng = random.Random(config.seed)
        self._forced_failures = config.fail_next_jobs
        self._forced_deploy_failures = config.fail_next_deployments

    def _draw(self, p: float) -> bool:
        # Always consume one number per decision so that the sequence depends only on the
        # order of requests, not on which probabilities are zero.
        return self._rng.random() < p

    def for_request(self) -> InjectedFault | None:
        """Choose the fault (if any) for one Azure API request."""
        c = self.config
        with self._lock:
            draws = {
                "reset": self._draw(c.p_reset),
                "429": self._draw(c.p_429),
                "500": self._draw(c.p_500),
                "503": self._draw(c.p_503),
                "slow": self._draw(c.p_slow),
            }
        for kind in ("reset", "429", "500", "503"):
            if draws[kind]:
                return InjectedFault(kind)  # type: ignore[arg-type,unused-ignore]
        if draws["slow"]:
            return InjectedFault("slow", c.slow_s)
        return None

    def job_fails(self) -> bool:
        """Whether a starting job is made to fail."""
        with self._lock:
            drawn = self._draw(self.config.p_job_fail)
            if self._forced_failures > 0:
                self._forced_failures -= 1
                return True
            return drawn

    def deployment_fails(self) -> bool:
        """Whether a custom avatar deployment being started ends ``Failed``."""
        with self._lock:
            if self._forced_deploy_failures > 0:
                self._forced_deploy_failures -= 1
                return True
            return False

    def url_expired(self) -> bool:
        """Whether a result URL being minted is already expired."""
        with self._lock:
            return self._draw(self.config.p_expired_url)
