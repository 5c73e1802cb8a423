"""Submitting jobs idempotently and waiting for many of them with as few requests as possible.

Requests are the scarce resource (Azure documents 2 requests per minute for batch avatar on
S0), so a whole run shares one view of its jobs:

* :class:`JobLookup` finds many jobs at once. The list endpoint returns up to 100 jobs per
  request, so one call usually answers for every job in flight. When the resource holds so
  many older jobs that paging costs more than one GET per job, it switches to GETs by itself.
* :func:`submit_jobs` looks every planned id up first and only PUTs the ones the service does
  not have: a rerun re-attaches, and nothing is ever paid for twice.
* :func:`wait_for_jobs` polls every pending job per round with that same lookup, within an
  overall deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from avatarpipe.batch.plan import PlannedJob
from avatarpipe.errors import PermanentServiceError, TransientServiceError, WaitTimeoutError
from avatarpipe.speech.models import BatchSynthesis, Status

__all__ = [
    "JobLookup",
    "SynthesisApi",
    "WaitOutcome",
    "is_transient_job_error",
    "submit_jobs",
    "wait_for_jobs",
]

log = logging.getLogger(__name__)

# Job-level error codes worth a resubmission; anything else is the request's fault.
_TRANSIENT_JOB_CODES = {
    "internalservererror",
    "serviceunavailable",
    "toomanyrequests",
    "timeout",
    "internal",
    "resultexpired",
    "vanished",
}


def is_transient_job_error(code: str | None) -> bool:
    """Whether a failed job's ``properties.error.code`` is worth resubmitting.

    Args:
        code: The service's job error code (``None`` when it gave none).

    Returns:
        ``True`` for service-side failures (5xx-like codes, timeouts), ``False`` for input errors.
    """
    return (code or "").lower() in _TRANSIENT_JOB_CODES


class SynthesisApi(Protocol):
    """The part of :class:`avatarpipe.speech.client.SpeechClient` used here."""

    def find_synthesis(self, job_id: str) -> BatchSynthesis | None: ...  # noqa: D102

    def list_syntheses_page(  # noqa: D102
        self, *, skip: int = 0, maxpagesize: int = 100
    ) -> tuple[list[BatchSynthesis], str | None]: ...

    def create_synthesis(  # noqa: D102
        self, job_id: str, job: BatchSynthesis, *, operation_id: str | None = None
    ) -> BatchSynthesis: ...


class JobLookup:
    """Finds many jobs per request: list pages when that is cheaper, GETs otherwise.

    Args:
        api: The Speech client.
        page_size: ``maxpagesize`` for list calls (the service's maximum is 100).
    """

    def __init__(self, api: SynthesisApi, *, page_size: int = 100) -> None:
        self._api = api
        self._page_size = page_size
        self._prefer_list = True
        self.requests = 0

    def fetch(self, ids: Iterable[str]) -> dict[str, BatchSynthesis]:
        """Return the jobs among ``ids`` that exist; absent ids do not exist in the resource.

        Raises:
            ServiceError: The service failed after the client's own retries.
        """
        wanted = set(ids)
        if not wanted:
            return {}
        if len(wanted) == 1 or not self._prefer_list:
            return self._fetch_each(wanted)
        found: dict[str, BatchSynthesis] = {}
        skip = pages = 0
        complete = False
        while True:
            page, next_link = self._api.list_syntheses_page(skip=skip, maxpagesize=self._page_size)
            self.requests += 1
            pages += 1
            for job in page:
                if job.id in wanted:
                    found[job.id] = job
            if len(found) == len(wanted):
                break
            if not next_link or not page:
                complete = True
                break
            if pages >= len(wanted):
                break  # paging costs more than GETs would; finish with GETs
            skip += len(page)
        if pages >= len(wanted) and len(found) < len(wanted):
            log.info("the resource holds many jobs: polling with one GET per job from now on")
            self._prefer_list = False
        missing = wanted - found.keys()
        if missing and not complete:
            found.update(self._fetch_each(missing))
        return found

    def _fetch_each(self, ids: set[str]) -> dict[str, BatchSynthesis]:
        found = {}
        for job_id in sorted(ids):
            job = self._api.find_synthesis(job_id)
            self.requests += 1
            if job is not None:
                found[job_id] = job
        return found


def submit_jobs(
    api: SynthesisApi,
    lookup: JobLookup,
    planned: Iterable[PlannedJob],
    *,
    destination_url: Callable[[PlannedJob], str | None] = lambda _job: None,
    on_submitted: Callable[[PlannedJob, BatchSynthesis, bool], None] | None = None,
    on_rejected: Callable[[PlannedJob, PermanentServiceError], None] | None = None,
) -> dict[str, BatchSynthesis]:
    """Make sure every planned job exists on the service, creating only the missing ones.

    Args:
        api: The Speech client.
        lookup: The run's shared lookup (one list call answers for many ids).
        planned: The jobs to submit.
        destination_url: Gives a job's ``destinationContainerUrl`` (``None`` for single inputs).
        on_submitted: Called with ``(job, service view, created)`` for each job.
        on_rejected: Called when the service refuses one job (a 4xx); the other jobs still go
            ahead. Without it the refusal is raised.

    Returns:
        The service's view of each accepted job, by id.

    Raises:
        RequestValidationError: A job's request is invalid (before anything is sent for it).
        ServiceError: The service refused a job or failed after retries.
    """
    jobs = list(planned)
    existing = lookup.fetch(j.job_id for j in jobs)
    result: dict[str, BatchSynthesis] = {}
    for job in jobs:
        seen = existing.get(job.job_id)
        created = False
        if seen is None:
            request = job.request(destination_url(job))
            request.to_request()  # validate before spending a request
            try:
                seen = api.create_synthesis(job.job_id, request)
                created = True
            except PermanentServiceError as exc:
                # A lost response to an earlier PUT, or another worker racing us: re-attach.
                seen = api.find_synthesis(job.job_id)
                if seen is None:
                    if on_rejected is None:
                        raise
                    on_rejected(job, exc)
                    continue
        else:
            log.info("job %s already exists (%s): re-attached", job.job_id, seen.status)
        result[job.job_id] = seen
        if on_submitted is not None:
            on_submitted(job, seen, created)
    return result


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
    """Poll until every job is final, with one shared lookup per round.

    Args:
        lookup: The run's shared lookup.
        ids: The jobs to wait for.
        poll_interval_s: Seconds between rounds at first. The interval then grows to a quarter
            of the time already waited, up to ``max_poll_interval_s``: a job is never noticed
            later than 25 % after it finished (short jobs as soon as with a fixed interval),
            while the number of polls grows only with the logarithm of a long render's length.
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
    deadline = clock() + timeout_s
    pending = set(ids)
    outcome = WaitOutcome()
    last: dict[str, Status | None] = {}
    failed_rounds = 0
    longest = max(poll_interval_s, max_poll_interval_s or 15 * poll_interval_s)
    started = clock()
    interval = poll_interval_s

    def pause() -> None:
        """Sleep until the next round, or raise when the deadline has passed."""
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeoutError(
                f"{len(pending)} job(s) not finished after {timeout_s:.0f} s: "
                f"{', '.join(sorted(pending))}; rerun to re-attach to them",
                continuation_token=",".join(sorted(pending)),
            )
        sleep(min(interval, remaining))

    while pending:
        try:
            found = lookup.fetch(pending)
        except TransientServiceError as exc:
            # A lost polling round is not a lost run: poll again next round, unless the service
            # has failed several rounds in a row (each round already retried with backoff).
            failed_rounds += 1
            if failed_rounds >= max_failed_rounds:
                raise
            log.warning("polling round failed (%s): polling again next round", exc.message)
            pause()
            continue
        failed_rounds = 0
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
        pending -= outcome.jobs.keys() | outcome.vanished
        pending |= follow_ups
        if not pending:
            break
        interval = min(longest, max(poll_interval_s, (clock() - started) / 4))
        pause()
    return outcome
