"""``SpeechClient``: the batch avatar and custom voice REST APIs over an injected ``httpx.Client``.

Every method is one logical call: each HTTP attempt first takes a token from the rate budget and
counts in :attr:`SpeechClient.request_count`; transient failures (429, 5xx, transport) are retried
by the :class:`~avatarpipe.speech.retry.RetryPolicy`; error responses become the exception tree of
:mod:`avatarpipe.errors`. The key or token is sent to the Speech endpoint's origin only.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from avatarpipe.errors import (
    ConfigError,
    NotFoundError,
    RequestValidationError,
    ResponseError,
    TransientServiceError,
)
from avatarpipe.settings import Settings
from avatarpipe.speech.auth import make_auth, redact_httpx_logs, scrub
from avatarpipe.speech.download import CHUNK_SIZE, download, safe_url
from avatarpipe.speech.models import (
    BatchSynthesis,
    Endpoint,
    Model,
    Operation,
    Page,
    Project,
    check_resource_id,
)
from avatarpipe.speech.polling import SynthesisPoller
from avatarpipe.speech.ratelimit import RateBudget, TokenBucket, UnlimitedBudget
from avatarpipe.speech.responses import describe_request, error_from_response, parse_model
from avatarpipe.speech.retry import RetryPolicy

__all__ = ["DEFAULT_TIMEOUT", "SpeechClient"]

log = logging.getLogger("avatarpipe.speech.client")

M = TypeVar("M", bound=BaseModel)

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
"""10 s to connect, 60 s for each read, write and pool wait."""

Api = Literal["avatar", "customvoice"]


class SpeechClient:
    """Client of the batch avatar (``/avatar``) and custom voice (``/customvoice``) REST APIs.

    Args:
        endpoint: ``https://{region}.api.cognitive.microsoft.com``, a custom domain, or the
            emulator's base URL.
        key: The resource key (``Ocp-Apim-Subscription-Key``).
        token: An Entra bearer token, or a callable returning a fresh one (not with ``key``).
        http: The ``httpx.Client`` to use (its transport decides where requests go); one is made
            and owned by this client when omitted.
        batch_api_version: ``api-version`` of the batch avatar API.
        voice_api_version: ``api-version`` of the custom voice API.
        timeout: Per-request timeouts; :data:`DEFAULT_TIMEOUT` when omitted.
        retry: Retry policy for transient errors; ``RetryPolicy()`` when omitted.
        budget: Rate budget, one token per HTTP attempt; unlimited when omitted.

    Raises:
        ConfigError: The endpoint is not an http(s) URL, or both a key and a token are given.

    Attributes:
        request_count: HTTP attempts made so far against the Speech service.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        key: str | SecretStr | None = None,
        token: str | Callable[[], str] | None = None,
        http: httpx.Client | None = None,
        batch_api_version: str = "2024-08-01",
        voice_api_version: str = "2026-01-01",
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        budget: RateBudget | None = None,
    ) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"speech endpoint {endpoint!r}: must start with https://")
        self.endpoint = endpoint.rstrip("/")
        self._origin = httpx.URL(self.endpoint)
        self._auth = make_auth(key, token)
        self._own_http = http is None
        self._http = http if http is not None else httpx.Client()
        self.api_versions: dict[Api, str] = {
            "avatar": batch_api_version,
            "customvoice": voice_api_version,
        }
        self.timeout = timeout or DEFAULT_TIMEOUT
        self.retry = retry or RetryPolicy()
        self.budget: RateBudget = budget or UnlimitedBudget()
        self._count_lock = threading.Lock()
        self.request_count = 0
        redact_httpx_logs()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        http: httpx.Client | None = None,
        budget: RateBudget | None = None,
    ) -> SpeechClient:
        """Build a client from :class:`~avatarpipe.settings.Settings`.

        Args:
            settings: The settings (endpoint, key or token, api versions, timeouts, retries,
                ``requests_per_minute``).
            http: The ``httpx.Client`` to use, if any.
            budget: A shared rate budget; a :class:`TokenBucket` at
                ``settings.requests_per_minute`` when omitted.

        Returns:
            The client.

        Raises:
            ConfigError: No endpoint is configured, or both a key and a token are.
        """
        if not settings.speech_endpoint:
            raise ConfigError("AVATARPIPE_SPEECH_ENDPOINT: not set (needed for the Speech client)")
        if settings.speech_key is not None and settings.speech_token is not None:
            raise ConfigError(
                "AVATARPIPE_SPEECH_KEY and AVATARPIPE_SPEECH_TOKEN: set one of them, not both"
            )
        token = settings.speech_token
        return cls(
            settings.speech_endpoint,
            key=settings.speech_key,
            token=token.get_secret_value if token is not None else None,
            http=http,
            batch_api_version=settings.batch_avatar_api_version,
            voice_api_version=settings.custom_voice_api_version,
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
            retry=RetryPolicy(
                max_attempts=settings.max_attempts, max_total_s=settings.max_retry_time_s
            ),
            budget=budget or TokenBucket(settings.requests_per_minute),
        )

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the HTTP client if this client made it (an injected one is left open)."""
        if self._own_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SpeechClient(endpoint={self.endpoint!r}, auth={self._auth!r})"

    # ------------------------------------------------------------------ plumbing

    def _url(self, api: Api, path: str) -> str:
        return f"{self.endpoint}/{api}/{path.lstrip('/')}"

    def _same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        )

    def _send_once(
        self,
        method: str,
        url: httpx.URL,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        expected: tuple[int, ...],
    ) -> httpx.Response:
        what = f"{method} {url.path}"
        self.budget.acquire()
        with self._count_lock:
            self.request_count += 1
        try:
            response = self._http.request(
                method,
                url,
                json=json,
                content=content,
                headers=headers,
                auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=self.timeout,
            )
        except httpx.TransportError as exc:
            detail = scrub(str(exc), self._secrets())
            raise TransientServiceError(f"{what}: {type(exc).__name__}: {detail}") from exc
        log.debug(
            "%s -> %d (apim-request-id: %s)",
            what,
            response.status_code,
            response.headers.get("apim-request-id", "-"),
        )
        if response.status_code in expected:
            return response
        raise error_from_response(response, what, secrets=self._secrets())

    def _secrets(self) -> list[str]:
        values = getattr(self._auth, "secret_values", None)
        return list(values()) if callable(values) else []

    def _request(
        self,
        method: str,
        api: Api,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        expected: tuple[int, ...] = (200,),
        url: str | None = None,
    ) -> httpx.Response:
        if url is not None:
            target = httpx.URL(url)
            if not self._same_origin(target):
                raise ResponseError(
                    f"{method} {safe_url(target)}: refusing to send credentials to another host "
                    f"than {self.endpoint}"
                )
        else:
            target = httpx.URL(self._url(api, path))
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if "api-version" not in target.params:
            query["api-version"] = self.api_versions[api]
        if query:
            target = target.copy_merge_params(query)
        what = f"{method} {target.path}"
        return self.retry.run(
            lambda: self._send_once(
                method, target, json=json, content=content, headers=headers, expected=expected
            ),
            what=what,
        )

    @staticmethod
    def _what(response: httpx.Response) -> str:
        return describe_request(response.request)

    def _parse(self, model: type[M], response: httpx.Response) -> M:
        return parse_model(model, response, self._what(response))

    def _page(
        self,
        api: Api,
        path: str,
        params: dict[str, Any],
        next_link: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        response = self._request(
            "GET", api, path, params=None if next_link else params, url=next_link
        )
        page = self._parse(Page, response)
        return page.value, page.next_link or None

    def _paged(self, model: type[M], api: Api, path: str, params: dict[str, Any]) -> Iterator[M]:
        next_link: str | None = None
        while True:
            items, next_link = self._page(api, path, params, next_link)
            for item in items:
                yield _validate_item(model, item, f"GET /{api}/{path}")
            if not next_link:
                return

    # ------------------------------------------------------------------ batch avatar

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
            TransientServiceError: 429/5xx/transport failures outlasted the retries.
            ResponseError: The service's answer is malformed.
        """
        check_resource_id(job_id, "job id")
        body = job.to_request()
        headers: dict[str, str] = {}
        if operation_id is not None:
            headers["Operation-Id"] = check_resource_id(operation_id, "operation id")
        url = httpx.URL(self._url("avatar", f"batchsyntheses/{job_id}")).copy_merge_params(
            {"api-version": self.api_versions["avatar"]}
        )
        attempts = 0

        def attempt() -> BatchSynthesis:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                existing = self._find_once(job_id)
                if existing is not None:
                    log.info("job %s exists after a failed PUT attempt: re-attached", job_id)
                    return existing
            response = self._send_once("PUT", url, json=body, headers=headers, expected=(200, 201))
            return self._parse(BatchSynthesis, response)

        return self.retry.run(attempt, what=f"PUT {url.path}")

    def _find_once(self, job_id: str) -> BatchSynthesis | None:
        url = httpx.URL(self._url("avatar", f"batchsyntheses/{job_id}")).copy_merge_params(
            {"api-version": self.api_versions["avatar"]}
        )
        try:
            response = self._send_once("GET", url, expected=(200, 204))
        except NotFoundError:
            return None
        if response.status_code == 204:
            return None
        return self._parse(BatchSynthesis, response)

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
        response = self._request("GET", "avatar", f"batchsyntheses/{job_id}", expected=(200, 204))
        if response.status_code == 204:
            raise NotFoundError(
                f"GET /avatar/batchsyntheses/{job_id}: 204 No Content: no such job",
                status_code=204,
                request_id=response.headers.get("apim-request-id"),
            )
        return self._parse(BatchSynthesis, response)

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
        params = _paging(skip, maxpagesize)
        items, link = self._page("avatar", "batchsyntheses", params, next_link)
        jobs = [_validate_item(BatchSynthesis, i, "GET /avatar/batchsyntheses") for i in items]
        return jobs, link

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
        yield from self._paged(
            BatchSynthesis, "avatar", "batchsyntheses", _paging(skip, maxpagesize)
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
            self._request("DELETE", "avatar", f"batchsyntheses/{job_id}", expected=(200, 202, 204))
        except NotFoundError:
            log.debug("job %s was already gone", job_id)

    def get_operation(self, operation_id: str, *, api: Api = "avatar") -> Operation:
        """Get an operation (``GET /{api}/operations/{id}``).

        Args:
            operation_id: The operation id (from ``Operation-Id``).
            api: ``avatar`` or ``customvoice``.

        Returns:
            The operation.

        Raises:
            RequestValidationError: The id is malformed or ``api`` is unknown.
            NotFoundError: No such operation.
            ServiceError: Any other error after retries.
            ResponseError: The answer is malformed.
        """
        if api not in self.api_versions:
            raise RequestValidationError(f"api {api!r}: use 'avatar' or 'customvoice'")
        check_resource_id(operation_id, "operation id")
        response = self._request("GET", api, f"operations/{operation_id}")
        return self._parse(Operation, response)

    def begin_synthesis(
        self,
        job_id: str,
        job: BatchSynthesis,
        *,
        poll_interval_s: float = 20.0,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> SynthesisPoller:
        """Start a job, or re-attach to it when the id exists already, and return a poller.

        The request is validated first; then one GET decides: an existing job is re-attached
        without a PUT (never submitted twice), a missing one is created.

        Args:
            job_id: The caller-chosen id, also the continuation token.
            job: The job.
            poll_interval_s: Seconds between polls in :meth:`SynthesisPoller.result`.
            sleep: Sleep function for the poller (tests).
            clock: Clock for the poller (tests).

        Returns:
            The poller.

        Raises:
            RequestValidationError: The id or the body would be rejected.
            ServiceError: The GET or the PUT failed.
            ResponseError: An answer is malformed.
        """
        check_resource_id(job_id, "job id")
        job.to_request()
        current = self.find_synthesis(job_id)
        if current is None:
            current = self.create_synthesis(job_id, job)
        else:
            log.info("job %s exists (%s): re-attached", job_id, current.status)
        extra: dict[str, Any] = {}
        if sleep is not None:
            extra["sleep"] = sleep
        if clock is not None:
            extra["clock"] = clock
        return SynthesisPoller(self, job_id, job=current, poll_interval_s=poll_interval_s, **extra)

    # ------------------------------------------------------------------ custom voice

    def get_project(self, project_id: str) -> Project:
        """Get a custom voice project.

        Args:
            project_id: The project id.

        Returns:
            The project.

        Raises:
            RequestValidationError: The id is malformed.
            NotFoundError: No such project.
            ServiceError: Any other error after retries.
            ResponseError: The answer is malformed.
        """
        check_resource_id(project_id, "project id")
        return self._parse(Project, self._request("GET", "customvoice", f"projects/{project_id}"))

    def list_projects(self, filter: str | None = None) -> Iterator[Project]:
        """Iterate over projects, following ``nextLink``.

        Args:
            filter: OData-like filter, e.g. ``locale eq 'en-US'``.

        Yields:
            Each project.

        Raises:
            ServiceError: A page request failed after retries.
            ResponseError: An answer is malformed.
        """
        yield from self._paged(Project, "customvoice", "projects", {"filter": filter})

    def get_model(self, model_id: str) -> Model:
        """Get a custom voice model.

        Args:
            model_id: The model id.

        Returns:
            The model (``voice_name`` is the name used in SSML and ``customVoices``).

        Raises:
            RequestValidationError: The id is malformed.
            NotFoundError: No such model.
            ServiceError: Any other error after retries.
            ResponseError: The answer is malformed.
        """
        check_resource_id(model_id, "model id")
        return self._parse(Model, self._request("GET", "customvoice", f"models/{model_id}"))

    def list_models(self, filter: str | None = None) -> Iterator[Model]:
        """Iterate over models, following ``nextLink``.

        Args:
            filter: OData-like filter, e.g. ``projectId eq 'Jessica'``.

        Yields:
            Each model.

        Raises:
            ServiceError: A page request failed after retries.
            ResponseError: An answer is malformed.
        """
        yield from self._paged(Model, "customvoice", "models", {"filter": filter})

    def get_endpoint(self, endpoint_id: str) -> Endpoint:
        """Get a custom voice endpoint (deployment).

        Args:
            endpoint_id: The endpoint's UUID (the deployment id).

        Returns:
            The endpoint.

        Raises:
            RequestValidationError: The id is not a UUID.
            NotFoundError: No such endpoint in this resource.
            ServiceError: Any other error after retries.
            ResponseError: The answer is malformed.
        """
        eid = _check_uuid(endpoint_id)
        return self._parse(Endpoint, self._request("GET", "customvoice", f"endpoints/{eid}"))

    def find_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """Get an endpoint, or ``None`` when it does not exist.

        Args:
            endpoint_id: The endpoint's UUID.

        Returns:
            The endpoint, or ``None``.

        Raises:
            RequestValidationError: The id is not a UUID.
            ServiceError: Any error other than 404 after retries.
            ResponseError: The answer is malformed.
        """
        try:
            return self.get_endpoint(endpoint_id)
        except NotFoundError:
            return None

    def list_endpoints(self, filter: str | None = None) -> Iterator[Endpoint]:
        """Iterate over endpoints, following ``nextLink``.

        Args:
            filter: OData-like filter, e.g. ``projectId eq 'Jessica'``.

        Yields:
            Each endpoint.

        Raises:
            ServiceError: A page request failed after retries.
            ResponseError: An answer is malformed.
        """
        yield from self._paged(Endpoint, "customvoice", "endpoints", {"filter": filter})

    def create_endpoint(
        self, endpoint_id: str, endpoint: Endpoint, *, operation_id: str | None = None
    ) -> Endpoint:
        """Deploy a model as an endpoint (``PUT /customvoice/endpoints/{uuid}``, 201).

        Args:
            endpoint_id: The caller-chosen UUID (becomes the deployment id).
            endpoint: ``projectId``, ``modelId`` and optional names and kind.
            operation_id: Optional ``Operation-Id`` header.

        Returns:
            The endpoint as created (status ``NotStarted``).

        Raises:
            RequestValidationError: The id is not a UUID or the operation id is malformed.
            ConflictError: The id is in use.
            PermanentServiceError: Any other 4xx.
            TransientServiceError: 429/5xx/transport failures outlasted the retries.
            ResponseError: The answer is malformed.
        """
        eid = _check_uuid(endpoint_id)
        headers: dict[str, str] = {}
        if operation_id is not None:
            headers["Operation-Id"] = check_resource_id(operation_id, "operation id")
        response = self._request(
            "PUT",
            "customvoice",
            f"endpoints/{eid}",
            json=endpoint.to_request(),
            headers=headers,
            expected=(200, 201),
        )
        return self._parse(Endpoint, response)

    def delete_endpoint(self, endpoint_id: str) -> None:
        """Delete an endpoint (204); one already gone is fine.

        Args:
            endpoint_id: The endpoint's UUID.

        Raises:
            RequestValidationError: The id is not a UUID.
            ServiceError: Any error other than 404 after retries.
        """
        eid = _check_uuid(endpoint_id)
        try:
            self._request("DELETE", "customvoice", f"endpoints/{eid}", expected=(200, 202, 204))
        except NotFoundError:
            log.debug("endpoint %s was already gone", eid)

    def suspend_endpoint(self, endpoint_id: str) -> Endpoint:
        """Suspend an endpoint (``POST /endpoints/{uuid}:suspend``, 202): no hosting charge.

        Args:
            endpoint_id: The endpoint's UUID.

        Returns:
            The endpoint (status ``Disabling``).

        Raises:
            RequestValidationError: The id is not a UUID.
            NotFoundError: No such endpoint.
            ServiceError: Any other error after retries.
            ResponseError: The answer is malformed.
        """
        return self._endpoint_action(endpoint_id, "suspend")

    def resume_endpoint(self, endpoint_id: str) -> Endpoint:
        """Resume a suspended endpoint (``POST /endpoints/{uuid}:resume``, 202).

        Args:
            endpoint_id: The endpoint's UUID.

        Returns:
            The endpoint (status ``Running``).

        Raises:
            RequestValidationError: The id is not a UUID.
            NotFoundError: No such endpoint.
            ServiceError: Any other error after retries.
            ResponseError: The answer is malformed.
        """
        return self._endpoint_action(endpoint_id, "resume")

    def _endpoint_action(self, endpoint_id: str, action: str) -> Endpoint:
        eid = _check_uuid(endpoint_id)
        response = self._request(
            "POST",
            "customvoice",
            f"endpoints/{eid}:{action}",
            content=b"",
            expected=(200, 202),
        )
        return self._parse(Endpoint, response)

    # ------------------------------------------------------------------ results

    def download(
        self,
        url: str,
        dest: Path,
        *,
        expected_size: int | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> int:
        """Stream a result URL to ``dest`` (see :func:`avatarpipe.speech.download.download`).

        Uses this client's ``httpx.Client`` and timeouts; the key or token is sent only when the
        URL is on the Speech endpoint's own origin (e.g. an emulator), never to storage.

        Args:
            url: The result URL.
            dest: The final file.
            expected_size: Bytes the file must have, if known.
            chunk_size: Bytes per read.

        Returns:
            The size of the file written.

        Raises:
            ResultExpiredError: Storage answered 403 or 404.
            DownloadError: Any other failure; nothing is left behind.
        """
        target = httpx.URL(url)
        auth = self._auth if self._same_origin(target) else None
        return download(
            url,
            dest,
            expected_size=expected_size,
            chunk_size=chunk_size,
            http=self._http,
            timeout=self.timeout,
            auth=auth,
        )


def _paging(skip: int, maxpagesize: int) -> dict[str, Any]:
    if skip < 0:
        raise RequestValidationError(f"skip: {skip} must not be negative")
    if not 1 <= maxpagesize <= 100:
        raise RequestValidationError(f"maxpagesize: {maxpagesize} must be between 1 and 100")
    return {"skip": skip, "maxpagesize": maxpagesize}


def _check_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise RequestValidationError(
            f"endpoint id {value!r} is invalid: it must be a UUID "
            "(e.g. 9f50c644-2121-40e9-9ea7-544e48bfe3cb)"
        ) from None


def _validate_item(model: type[M], item: dict[str, Any], what: str) -> M:
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "item"
        raise ResponseError(
            f"{what}: a listed item does not fit {model.__name__}: {loc}: {first['msg']}"
        ) from None
