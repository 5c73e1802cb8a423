"""Submitting jobs idempotently, with as few requests as possible.

Requests are the scarce resource (Azure documents 2 requests per minute for batch avatar on
S0), so a whole run shares one view of its jobs:

* :class:`JobLookup` finds many jobs at once. The list endpoint returns up to 100 jobs per
  request, so one call usually answers for every job in flight. When the resource holds so
  many older jobs that paging costs more than one GET per job, it switches to GETs by itself.
  :func:`avatarpipe.batch.wait.wait_for_jobs` polls with the same lookup.
* :func:`submit_jobs` looks every planned id up first and only PUTs the ones the service does
  not have: a rerun re-attaches, and nothing is ever paid for twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from avatarpipe.batch.plan import PlannedJob
from avatarpipe.errors import PermanentServiceError
from avatarpipe.speech.models import BatchSynthesis

__all__ = ["JobLookup", "SynthesisApi", "submit_jobs"]

log = logging.getLogger(__name__)


class SynthesisApi(Protocol):
    """The part of :class:`avatarpipe.speech.batch_avatar.BatchAvatarClient` used here."""

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
        api: The batch avatar client.
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
        api: The batch avatar client.
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
