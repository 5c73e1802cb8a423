"""The one poll loop: jobs, voice endpoints, avatar deployments and probes all wait here.

:func:`wait_until` calls a check until it reports a result, sleeping between checks with a
geometric back-off: the interval starts at ``interval`` and grows to a quarter of the time
already waited (up to ``max_interval``). Something that finishes is never noticed later than
25 % after it finished (short waits as soon as with a fixed interval), while the number of
checks grows only with the logarithm of a long wait. :func:`wait_for_jobs` is the batch jobs'
use of it: one shared lookup per round answers for every job in flight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from avatarpipe.batch.submit import JobLookup
from avatarpipe.errors import TRANSIENT_ERRORS, WaitTimeoutError
from avatarpipe.speech.models import BatchSynthesis, Status

__all__ = ["WaitOutcome", "wait_for_jobs", "wait_until"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None],
    *,
    interval: float,
    timeout: float,
    timed_out: Callable[[], WaitTimeoutError],
    max_interval: float | None = None,
    max_failed_checks: int = 1,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``check`` until it returns something other than ``None``, then return that.

    Args:
        check: Looks once; returns the result when the wait is over, ``None`` to wait more.
            Errors it raises end the wait (except transient ones, see ``max_failed_checks``).
        interval: Seconds between the first checks; later ones grow to a quarter of the time
            already waited, up to ``max_interval``.
        timeout: Overall deadline in seconds.
        timed_out: Builds the error raised at the deadline.
        max_interval: Longest interval (default: 15 x ``interval``).
        max_failed_checks: Consecutive checks that may fail with a
            :class:`~avatarpipe.errors.TransientServiceError` (after the client's own retries)
            before the error is raised; the default 1 raises the first.
        sleep: Injected for tests.
        clock: Injected for tests.

    Returns:
        What ``check`` returned.

    Raises:
        WaitTimeoutError: From ``timed_out``: the deadline passed first.
        TransientServiceError: ``max_failed_checks`` checks in a row failed.
    """
    started = clock()
    deadline = started + timeout
    longest = max(interval, max_interval or 15 * interval)
    pause = interval
    failed = 0
    while True:
        try:
            result = check()
        except TRANSIENT_ERRORS as exc:
            # A lost check is not a lost wait: check again next round, unless the service has
            # failed several rounds in a row (each one already retried with backoff).
            failed += 1
            if failed >= max_failed_checks:
                raise
            log.warning("check failed (%s): checking again next round", exc.message)
        else:
            if result is not None:
                return result
            failed = 0
            pause = min(longest, max(interval, (clock() - started) / 4))
        remaining = deadline - clock()
        if remaining <= 0:
            raise timed_out()
        sleep(min(pause, remaining))


@dataclass
class WaitOutcome:
    """What :func:`wait_for_jobs` found.

    Attributes:
        jobs: Final (``Succeeded`` or ``Failed``) jobs by id.
        vanished: Ids the service no longer knows (deleted, or expired by TTL).
    """

    jobs: dict[str, BatchSynthesis] = field(default_factory=dict)
    vanished: set[str] = field(default_factory=set)


def wait_for_jobs(
    lookup: JobLookup,
    ids: Iterable[str],
    *,
    poll_interval_s: float,
    timeout_s: float,
    on_change: Callable[[BatchSynthesis], None] | None = None,
    on_final: Callable[[str, BatchSynthesis | None], Iterable[str]] | None = None,
    max_failed_rounds: int = 5,
    max_poll_interval_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> WaitOutcome:
    """Poll until every job is final, with one shared lookup per round (see :func:`wait_until`).

    Args:
        lookup: The run's shared lookup.
        ids: The jobs to wait for.
        poll_interval_s: Seconds between the first rounds (then the geometric back-off).
        timeout_s: Overall deadline for all jobs.
        on_change: Called whenever a job's status changes (progress reporting).
        on_final: Called once per job that is final (``None`` when it vanished); returns ids of
            follow-up jobs (resubmissions) to wait for too. Lets downloads start at once.
        max_failed_rounds: Consecutive polling rounds that may fail with a transient error
            (after the client's own retries) before the error is raised.
        max_poll_interval_s: Longest interval (default: 15 x ``poll_interval_s``).
        sleep: Injected for tests.
        clock: Injected for tests.

    Returns:
        The final jobs and the ids that vanished.

    Raises:
        WaitTimeoutError: Some jobs are still not final at the deadline; its
            ``continuation_token`` lists their ids (comma-separated).
        TransientServiceError: ``max_failed_rounds`` polling rounds in a row failed.
        ServiceError: The service refused a polling request.
    """
    pending = set(ids)
    outcome = WaitOutcome()
    last: dict[str, Status | None] = {}

    def round_() -> WaitOutcome | None:
        found = lookup.fetch(pending)
        follow_ups: set[str] = set()
        for job_id in sorted(pending):
            job = found.get(job_id)
            if job is None:
                outcome.vanished.add(job_id)
            else:
                if job.status != last.get(job_id):
                    last[job_id] = job.status
                    if on_change is not None:
                        on_change(job)
                if job.status is None or not job.status.is_final:
                    continue
                outcome.jobs[job_id] = job
            if on_final is not None:
                follow_ups.update(on_final(job_id, job))
        pending.difference_update(outcome.jobs.keys() | outcome.vanished)
        pending.update(follow_ups)
        return None if pending else outcome

    def timed_out() -> WaitTimeoutError:
        return WaitTimeoutError(
            f"{len(pending)} job(s) not finished after {timeout_s:.0f} s: "
            f"{', '.join(sorted(pending))}; rerun to re-attach to them",
            continuation_token=",".join(sorted(pending)),
        )

    if not pending:
        return outcome
    return wait_until(
        round_,
        interval=poll_interval_s,
        timeout=timeout_s,
        timed_out=timed_out,
        max_interval=max_poll_interval_s,
        max_failed_checks=max_failed_rounds,
        sleep=sleep,
        clock=clock,
    )
