"""A small synchronous poller for a batch avatar synthesis job.

The continuation token is the job id the caller chose, so a crashed run resumes with
:meth:`SynthesisPoller.from_continuation_token` and never submits (or pays for) a job twice.
Sleeping and the clock are injectable, so an orchestrator (or a test) keeps control of time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from avatarpipe.errors import SynthesisFailedError, WaitTimeoutError
from avatarpipe.speech.models import BatchSynthesis, Status, check_resource_id

if TYPE_CHECKING:
    from avatarpipe.speech.client import SpeechClient

__all__ = ["SynthesisPoller"]


class SynthesisPoller:
    """Follows one batch synthesis job until it is ``Succeeded`` or ``Failed``.

    Args:
        client: The client used for ``GET /avatar/batchsyntheses/{id}``.
        job_id: The job id (the continuation token).
        job: The job as last seen (from the create or the re-attach GET), if any.
        poll_interval_s: Seconds between GETs in :meth:`result`.
        sleep: Sleep function (injectable for tests).
        clock: Monotonic clock in seconds (injectable for tests).

    Raises:
        RequestValidationError: ``job_id`` is not a valid job id.
    """

    def __init__(
        self,
        client: SpeechClient,
        job_id: str,
        *,
        job: BatchSynthesis | None = None,
        poll_interval_s: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._job_id = check_resource_id(job_id, "job id")
        self._job = job
        self.poll_interval_s = poll_interval_s
        self._sleep = sleep
        self._clock = clock

    @classmethod
    def from_continuation_token(
        cls,
        client: SpeechClient,
        token: str,
        poll_interval_s: float = 20.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> SynthesisPoller:
        """Resume following a job from its continuation token (its id).

        No request is made until the poller is asked for a status.

        Args:
            client: The client.
            token: What :meth:`continuation_token` returned.
            poll_interval_s: Seconds between GETs in :meth:`result`.
            sleep: Sleep function.
            clock: Monotonic clock.

        Returns:
            The poller.

        Raises:
            RequestValidationError: The token is not a valid job id.
        """
        return cls(client, token, poll_interval_s=poll_interval_s, sleep=sleep, clock=clock)

    def continuation_token(self) -> str:
        """The token to resume from later: the job id.

        Returns:
            The job id.
        """
        return self._job_id

    def polling_job(self) -> BatchSynthesis:
        """The job as last seen; GETs it only when it was never seen (a fresh resume).

        Returns:
            The last fetched job.

        Raises:
            NotFoundError: The job does not exist.
            ServiceError: The GET failed after retries.
        """
        return self._job if self._job is not None else self.refresh()

    def observe(self, job: BatchSynthesis) -> None:
        """Feed in the job as seen elsewhere (e.g. from one list call that covers many jobs).

        Args:
            job: The job; ignored unless its id is this poller's.
        """
        if job.id == self._job_id:
            self._job = job

    def refresh(self) -> BatchSynthesis:
        """GET the job now (one request).

        Returns:
            The job.

        Raises:
            NotFoundError: The job no longer exists (deleted, or expired by its TTL).
            ServiceError: The GET failed after retries.
        """
        self._job = self._client.get_synthesis(self._job_id)
        return self._job

    def status(self) -> Status:
        """The job's status, fetched with one GET unless already final.

        Returns:
            The status.

        Raises:
            NotFoundError: The job no longer exists.
            ServiceError: The GET failed after retries.
        """
        job = self._job
        if job is None or job.status is None or not job.status.is_final:
            job = self.refresh()
        return job.status or Status.NOT_STARTED

    def done(self) -> bool:
        """Whether the job is final (``Succeeded`` or ``Failed``); may GET once.

        Returns:
            ``True`` when final.

        Raises:
            NotFoundError: The job no longer exists.
            ServiceError: The GET failed after retries.
        """
        return self.status().is_final

    def result(self, timeout: float | None = None) -> BatchSynthesis:
        """Poll until the job is final and return it.

        Args:
            timeout: Seconds to wait at most; ``None`` waits for ever.

        Returns:
            The ``Succeeded`` job (with ``outputs``).

        Raises:
            SynthesisFailedError: The job ended ``Failed`` (with the service's error).
            WaitTimeoutError: ``timeout`` passed first; carries the continuation token.
            NotFoundError: The job no longer exists.
            ServiceError: A GET failed after retries.
        """
        start = self._clock()
        while True:
            status = self.status()
            if status is Status.SUCCEEDED:
                assert self._job is not None
                return self._job
            if status is Status.FAILED:
                assert self._job is not None
                error = self._job.properties.error if self._job.properties else None
                raise SynthesisFailedError(
                    self._job_id,
                    code=error.code if error else None,
                    service_message=error.message if error else None,
                )
            delay = self.poll_interval_s
            if timeout is not None:
                remaining = timeout - (self._clock() - start)
                if remaining <= 0:
                    raise WaitTimeoutError(
                        f"batch synthesis {self._job_id!r} still {status.value} after "
                        f"{timeout:g} s; resume with its id",
                        continuation_token=self._job_id,
                    )
                delay = min(delay, remaining)
            self._sleep(delay)

    def __repr__(self) -> str:
        status = self._job.status.value if self._job and self._job.status else "unknown"
        return f"SynthesisPoller(job_id={self._job_id!r}, status={status})"
