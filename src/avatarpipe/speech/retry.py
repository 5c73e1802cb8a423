"""Retries of transient Speech service errors: exponential backoff with jitter, bounded twice.

A call is retried on :data:`~avatarpipe.errors.TRANSIENT_ERRORS` (no answer: connect errors and
timeouts; or 429, 5xx) and never on anything else. The wait before attempt ``n + 1`` is
``base_delay_s * 2 ** (n - 1)`` scaled by a random factor in ``[1 - jitter, 1 + jitter]``, or the
service's ``Retry-After`` when it sent one (Azure does not promise it), always capped by
``max_delay_s`` and by what is left of ``max_total_s``.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from avatarpipe.errors import TRANSIENT_ERRORS, RateLimitedError, ServiceError

__all__ = ["RetryPolicy", "parse_retry_after"]

T = TypeVar("T")

log = logging.getLogger("avatarpipe.speech.retry")


def parse_retry_after(
    value: str | None, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> float | None:
    """Parse a ``Retry-After`` header: delay seconds or an HTTP date.

    Args:
        value: The header value, or ``None``.
        now: Current wall-clock time (for HTTP dates; injectable for tests).

    Returns:
        Seconds to wait (never negative), or ``None`` when absent or unparseable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN -> None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


class RetryPolicy:
    """How often and how long to retry transient errors.

    Args:
        max_attempts: Attempts in all, the first one included (>= 1).
        base_delay_s: Backoff before the second attempt; doubles each time.
        max_delay_s: Cap on any single wait, ``Retry-After`` included.
        max_total_s: Cap on the time from the first attempt to giving up.
        jitter: Relative spread of the backoff (0 = none, 0.5 = +-50 %).
        sleep: Sleep function (injectable for tests).
        clock: Monotonic clock in seconds (injectable for tests).
        rng: Random source for the jitter (injectable for tests).

    Raises:
        ValueError: A bound is out of range.
    """

    def __init__(
        self,
        max_attempts: int = 6,
        base_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        max_total_s: float = 600.0,
        jitter: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if base_delay_s < 0 or max_delay_s < 0 or max_total_s < 0:
            raise ValueError("delays must not be negative")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {jitter}")
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.max_total_s = max_total_s
        self.jitter = jitter
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    def backoff(self, attempt: int) -> float:
        """The jittered backoff after failed attempt number ``attempt`` (1-based).

        Args:
            attempt: The attempt that just failed.

        Returns:
            Seconds to wait, capped by ``max_delay_s``.
        """
        raw = self.base_delay_s * (2.0 ** (attempt - 1))
        factor = 1.0 + self.jitter * (2.0 * self._rng.random() - 1.0)
        return min(self.max_delay_s, raw * factor)

    def delay_for(self, attempt: int, error: ServiceError) -> float:
        """The wait before the next attempt: ``Retry-After`` when given, else the backoff.

        Args:
            attempt: The attempt that just failed (1-based).
            error: What it failed with.

        Returns:
            Seconds to wait, capped by ``max_delay_s`` (not yet by the total budget).
        """
        retry_after = error.retry_after if isinstance(error, RateLimitedError) else None
        if retry_after is not None:
            return min(self.max_delay_s, max(0.0, retry_after))
        return self.backoff(attempt)

    def run(self, call: Callable[[], T], *, what: str = "request") -> T:
        """Call ``call`` until it returns, retrying transient errors within the bounds.

        Args:
            call: The attempt; it raises one of :data:`TRANSIENT_ERRORS` for retryable failures.
            what: A short description for log lines (must hold no secret).

        Returns:
            What ``call`` returned.

        Raises:
            ServiceRequestError: The last transient error, once attempts or time ran out
                (a note says how many attempts were made).
            TransientServiceError: Likewise, when the service answered 429 or 5xx.
            Exception: Anything else ``call`` raises, at once and unchanged.
        """
        start = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except TRANSIENT_ERRORS as exc:
                elapsed = self._clock() - start
                remaining = self.max_total_s - elapsed
                if attempt >= self.max_attempts or remaining <= 0:
                    exc.add_note(
                        f"gave up after {attempt} attempt(s) in {elapsed:.1f} s "
                        f"(max_attempts={self.max_attempts}, max_total_s={self.max_total_s})"
                    )
                    raise
                delay = min(self.delay_for(attempt, exc), remaining)
                log.warning(
                    "%s: attempt %d failed (%s); retrying in %.2f s",
                    what,
                    attempt,
                    exc.message,
                    delay,
                )
                if delay > 0:
                    self._sleep(delay)
