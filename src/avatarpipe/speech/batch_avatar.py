"""``BatchAvatarClient``: the batch avatar synthesis REST API (``/avatar``) over a ``Pipeline``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from avatarpipe.errors import NotFoundError, RequestValidationError
from avatarpipe.speech.models import BatchSynthesis, Operation, check_resource_id
from avatarpipe.speech.pipeline import CHUNK_SIZE, ByteStream, Pipeline

__all__ = ["BATCH_AVATAR_API_VERSION", "BatchAvatarClient"]

log = logging.getLogger("avatarpipe.speech.batch_avatar")

BATCH_AVATAR_API_VERSION = "2024-08-01"
"""The ``api-version`` of the batch avatar API used by default."""

_JOBS = "avatar/batchsyntheses"


class BatchAvatarClient:
    """Client of the batch avatar synthesis API.

    Args:
        pipeline: The shared pipeline (endpoint, auth, retry, budget).
        api_version: ``api-version`` of the batch avatar API.

    Attributes:
        pipeline: The pipeline.
        api_version: The API version sent with every request.
    """

    def __init__(self, pipeline: Pipeline, *, api_version: str = BATCH_AVATAR_API_VERSION) -> None:
        self.pipeline = pipeline
        self.api_version = api_version

    def __repr__(self) -> str:
        return f"BatchAvatarClient({self.pipeline!r}, api_version={self.api_version!r})"

    def create_synthesis(
        self, job_id: str, job: BatchSynthesis, *, operation_id: str | None = None
    ) -> BatchSynthesis:
        """Create a batch avatar synthesis job (``PUT /avatar/batchsyntheses/{id}``, 201).

        The body is checked first (:meth:`BatchSynthesis.to_request`). When an attempt fails in a
        way that may have reached the service (5xx, transport error), the next attempt first GETs
        the job and returns it if it exists, so the job is never submitted twice.

        Args:
            job_id: The caller-chosen id (3-64 letters, digits, ``.``, ``-``, ``_``).
            job: The job.
            operation_id: Optional ``Operation-Id`` header (same pattern).

        Returns:
            The created job as the service echoes it (status ``NotStarted``).

        Raises:
            RequestValidationError: The id or the body would be rejected by the service.
            ConflictError: 409 (an id in use with another request).
            PermanentServiceError: Any other 4xx (e.g. 400 with the service's reason).
            ServiceRequestError: Connect errors or timeouts outlasted the retries.
            TransientServiceError: 429/5xx answers outlasted the retries.
            ResponseError: The service's answer is malformed.
        """
        check_resource_id(job_id, "job id")
        body = job.to_request()
        headers: dict[str, str] = {}
        if operation_id is not None:
            headers["Operation-Id"] = check_resource_id(operation_id, "operation id")
        url = self.pipeline.url(f"{_JOBS}/{job_id}", self.api_version)
        attempts = 0

        def attempt() -> BatchSynthesis:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                existing = self._find_once(job_id)
                if existing is not None:
                    log.info("job %s exists after a failed PUT attempt: re-attached", job_id)
                    return existing
            response = self.pipeline.send(
                "PUT", url, json=body, headers=headers, expected=(200, 201)
            )
            return self.pipeline.parse(BatchSynthesis, response)

        return self.pipeline.retry.run(attempt, what=f"PUT {url.path}")

    def _find_once(self, job_id: str) -> BatchSynthesis | None:
        url = self.pipeline.url(f"{_JOBS}/{job_id}", self.api_version)
        try:
            response = self.pipeline.send("GET", url, expected=(200, 204))
        except NotFoundError:
            return None
        if response.status_code == 204:
            return None
        return self.pipeline.parse(BatchSynthesis, response)

    def get_synthesis(self, job_id: str) -> BatchSynthesis:
        """Get a job (``GET /avatar/batchsyntheses/{id}``).

        Args:
            job_id: The job id.

        Returns:
            The job.

        Raises:
            RequestValidationError: The id is malformed.
            NotFoundError: No such job (404, or the documented 204 for a missing job).
            ServiceError: Any other error after retries.
            ResponseError: The service's answer is malformed.
        """
        check_resource_id(job_id, "job id")
        response = self.pipeline.request(
            "GET", f"{_JOBS}/{job_id}", api_version=self.api_version, expected=(200, 204)
        )
        if response.status_code == 204:
            raise NotFoundError(
                f"GET /{_JOBS}/{job_id}: 204 No Content: no such job",
                status_code=204,
                request_id=response.headers.get("apim-request-id"),
            )
        return self.pipeline.parse(BatchSynthesis, response)

    def find_synthesis(self, job_id: str) -> BatchSynthesis | None:
        """Get a job, or ``None`` when it does not exist (404 or 204).

        Args:
            job_id: The job id.

        Returns:
            The job, or ``None``.

        Raises:
            RequestValidationError: The id is malformed.
            ServiceError: Any error other than "not found" after retries.
            ResponseError: The service's answer is malformed.
        """
        try:
            return self.get_synthesis(job_id)
        except NotFoundError:
            return None

    def list_syntheses_page(
        self, *, skip: int = 0, maxpagesize: int = 100, next_link: str | None = None
    ) -> tuple[list[BatchSynthesis], str | None]:
        """Get one page of jobs (one request).

        Args:
            skip: Jobs to skip (ignored with ``next_link``).
            maxpagesize: Jobs per page, 1-100 (ignored with ``next_link``).
            next_link: A ``nextLink`` from a previous page.

        Returns:
            The page's jobs and the next page's link (``None`` on the last page).

        Raises:
            RequestValidationError: ``skip`` or ``maxpagesize`` is out of range.
            ServiceError: The request failed after retries.
            ResponseError: The answer is malformed, or ``nextLink`` points to another host.
        """
        return self.pipeline.page(
            BatchSynthesis,
            _JOBS,
            api_version=self.api_version,
            params=_paging(skip, maxpagesize),
            next_link=next_link,
        )

    def list_syntheses(self, *, skip: int = 0, maxpagesize: int = 100) -> Iterator[BatchSynthesis]:
        """Iterate over all jobs, following ``nextLink`` (one request per page).

        Args:
            skip: Jobs to skip.
            maxpagesize: Jobs per page, 1-100.

        Yields:
            Each job.

        Raises:
            RequestValidationError: ``skip`` or ``maxpagesize`` is out of range.
            ServiceError: A page request failed after retries.
            ResponseError: An answer is malformed, or ``nextLink`` points to another host.
        """
        yield from self.pipeline.paged(
            BatchSynthesis, _JOBS, api_version=self.api_version, params=_paging(skip, maxpagesize)
        )

    def delete_synthesis(self, job_id: str) -> None:
        """Delete a job and its results (``DELETE``, 204); a job already gone is fine.

        Args:
            job_id: The job id.

        Raises:
            RequestValidationError: The id is malformed.
            ServiceError: Any error other than 404 after retries.
        """
        check_resource_id(job_id, "job id")
        try:
            self.pipeline.request(
                "DELETE",
                f"{_JOBS}/{job_id}",
                api_version=self.api_version,
                expected=(200, 202, 204),
            )
        except NotFoundError:
            log.debug("job %s was already gone", job_id)

    def get_operation(self, operation_id: str) -> Operation:
        """Get an operation (``GET /avatar/operations/{id}``).

        Args:
            operation_id: The operation id (from ``Operation-Id``).

        Returns:
            The operation.

        Raises:
            RequestValidationError: The id is malformed.
            NotFoundError: No such operation.
            ServiceError: Any other error after retries.
            ResponseError: The answer is malformed.
        """
        check_resource_id(operation_id, "operation id")
        response = self.pipeline.request(
            "GET", f"avatar/operations/{operation_id}", api_version=self.api_version
        )
        return self.pipeline.parse(Operation, response)

    def stream(
        self, url: str, *, chunk_size: int = CHUNK_SIZE
    ) -> AbstractContextManager[ByteStream]:
        """Open a job's result URL for streaming (see :meth:`Pipeline.stream`).

        The credential is sent only when the URL is on the Speech endpoint's own origin (an
        emulator), never to storage on another host.

        Args:
            url: A result URL (``outputs.result``, ``outputs.summary``).
            chunk_size: Bytes per chunk.

        Returns:
            A context manager yielding ``(declared length or None, chunks)``.

        Raises:
            ResultExpiredError: Storage answered 403 or 404: get the job again for a fresh URL.
            DownloadError: Any other failure.
        """
        return self.pipeline.stream(url, chunk_size=chunk_size)


def _paging(skip: int, maxpagesize: int) -> dict[str, Any]:
    if skip < 0:
        raise RequestValidationError(f"skip: {skip} must not be negative")
    if not 1 <= maxpagesize <= 100:
        raise RequestValidationError(f"maxpagesize: {maxpagesize} must be between 1 and 100")
    return {"skip": skip, "maxpagesize": maxpagesize}
