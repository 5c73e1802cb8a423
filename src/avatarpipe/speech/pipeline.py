"""``Pipeline``: the HTTP pipeline shared by the Speech API clients.

One ``Pipeline`` is one Speech resource: its endpoint, its credential, one ``httpx.Client``, the
retry policy, the rate budget and the request counter. Every HTTP attempt first takes a token
from the rate budget and counts in :attr:`Pipeline.request_count`; transient failures (429,
5xx, transport) are retried by the :class:`~avatarpipe.speech.retry.RetryPolicy`; error
responses become the exception tree of :mod:`avatarpipe.errors`. The credential is sent to the
endpoint's own origin only: a ``nextLink`` to another host is refused, and a result download
from another host (Blob Storage) goes out without it.

The API clients (:class:`~avatarpipe.speech.batch_avatar.BatchAvatarClient`,
:class:`~avatarpipe.speech.custom_voice.CustomVoiceClient`) hold no HTTP logic of their own.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel

from avatarpipe.errors import (
    ConfigError,
    DownloadError,
    ResponseError,
    ResultExpiredError,
    ServiceRequestError,
)
from avatarpipe.speech.auth import redact_httpx_logs, scrub
from avatarpipe.speech.models import Page
from avatarpipe.speech.ratelimit import RateBudget, UnlimitedBudget
from avatarpipe.speech.responses import (
    describe_request,
    error_from_response,
    fit_model,
    parse_model,
)
from avatarpipe.speech.retry import RetryPolicy

__all__ = ["CHUNK_SIZE", "DEFAULT_TIMEOUT", "ByteStream", "Pipeline", "safe_url"]

log = logging.getLogger("avatarpipe.speech.pipeline")

M = TypeVar("M", bound=BaseModel)

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
"""10 s to connect, 60 s for each read, write and pool wait."""

CHUNK_SIZE = 1024 * 1024
"""Bytes per chunk of a streamed download."""

ByteStream = tuple[int | None, Iterator[bytes]]
"""What a download stream yields: the declared length (``None`` when unknown) and the chunks."""


def safe_url(url: str | httpx.URL) -> str:
    """The URL without its query string (which may hold a SAS signature).

    Args:
        url: Any URL.

    Returns:
        ``scheme://host[:port]/path`` plus ``?***`` when there was a query.
    """
    try:
        parsed = httpx.URL(str(url))
    except (httpx.InvalidURL, TypeError, ValueError):
        text = str(url)
        return text.split("?", 1)[0] + ("?***" if "?" in text else "")
    port = f":{parsed.port}" if parsed.port else ""
    base = f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"
    return base + ("?***" if parsed.query else "")


class Pipeline:
    """The shared HTTP pipeline of one Speech resource.

    Args:
        endpoint: ``https://{name}.cognitiveservices.azure.com``, a regional endpoint, or the
            emulator's base URL.
        auth: How requests authenticate (:mod:`avatarpipe.speech.auth`); ``None`` sends nothing.
        http: The ``httpx.Client`` to use (its transport decides where requests go); one is made
            and owned by the pipeline when omitted.
        timeout: Per-request timeouts; :data:`DEFAULT_TIMEOUT` when omitted.
        retry: Retry policy for transient errors; ``RetryPolicy()`` when omitted.
        budget: Rate budget, one token per HTTP attempt; unlimited when omitted.

    Raises:
        ConfigError: The endpoint is not an http(s) URL.

    Attributes:
        endpoint: The endpoint, without a trailing ``/``.
        timeout: The per-request timeouts.
        retry: The retry policy.
        budget: The rate budget.
        request_count: HTTP attempts made so far against the Speech service.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        auth: httpx.Auth | None = None,
        http: httpx.Client | None = None,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        budget: RateBudget | None = None,
    ) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"speech endpoint {endpoint!r}: must start with https://")
        self.endpoint = endpoint.rstrip("/")
        self._origin = httpx.URL(self.endpoint)
        self._auth = auth
        self._own_http = http is None
        self._http = http if http is not None else httpx.Client()
        self.timeout = timeout or DEFAULT_TIMEOUT
        self.retry = retry or RetryPolicy()
        self.budget: RateBudget = budget or UnlimitedBudget()
        self._count_lock = threading.Lock()
        self.request_count = 0
        redact_httpx_logs()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the HTTP client if the pipeline made it (an injected one is left open)."""
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
        return f"Pipeline(endpoint={self.endpoint!r}, auth={self._auth!r})"

    # ------------------------------------------------------------------ requests

    def url(self, path: str, api_version: str) -> httpx.URL:
        """The URL of an API path on this endpoint, with its ``api-version``.

        Args:
            path: E.g. ``avatar/batchsyntheses/my-job``.
            api_version: The API's version.

        Returns:
            ``{endpoint}/{path}?api-version={api_version}``.
        """
        url = httpx.URL(f"{self.endpoint}/{path.lstrip('/')}")
        return url.copy_merge_params({"api-version": api_version})

    def same_origin(self, url: httpx.URL) -> bool:
        """Whether ``url`` is on the endpoint's own scheme, host and port.

        Args:
            url: Any URL.

        Returns:
            ``True`` when the credential may be sent there.
        """
        return (url.scheme, url.host, url.port) == (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        )

    def send(
        self,
        method: str,
        url: httpx.URL,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        expected: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """Make one HTTP attempt (one budget token, one count), without retries.

        Args:
            method: The HTTP method.
            url: The full URL (on this endpoint).
            json: A JSON body.
            content: A raw body.
            headers: Extra headers.
            expected: The statuses that count as success.

        Returns:
            The response (body read).

        Raises:
            ServiceRequestError: No answer came (connect error, timeout): retryable.
            TransientServiceError: 429 or 5xx: retryable.
            PermanentServiceError: Any other 4xx.
        """
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
            detail = scrub(str(exc), self.secrets())
            raise ServiceRequestError(
                f"{what}: {type(exc).__name__}: {detail}", method=method, url=str(url)
            ) from exc
        log.debug(
            "%s -> %d (apim-request-id: %s)",
            what,
            response.status_code,
            response.headers.get("apim-request-id", "-"),
        )
        if response.status_code in expected:
            return response
        raise error_from_response(response, what, secrets=self.secrets())

    def secrets(self) -> list[str]:
        """The exact secret strings the auth sends (to scrub them from any text).

        Returns:
            The key or the last token sent; empty without auth.
        """
        values = getattr(self._auth, "secret_values", None)
        return list(values()) if callable(values) else []

    def request(
        self,
        method: str,
        path: str,
        *,
        api_version: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        expected: tuple[int, ...] = (200,),
        url: str | None = None,
    ) -> httpx.Response:
        """Make one logical call: attempts with retries on transient failures.

        Args:
            method: The HTTP method.
            path: The API path (ignored when ``url`` is given).
            api_version: Added when the URL has no ``api-version`` yet.
            params: Query parameters (``None`` values are dropped).
            json: A JSON body.
            content: A raw body.
            headers: Extra headers.
            expected: The statuses that count as success.
            url: A full URL to call instead (a ``nextLink``); it must be on this endpoint.

        Returns:
            The response (body read).

        Raises:
            ResponseError: ``url`` points to another host (the credential is never sent there).
            ServiceRequestError: Connect errors or timeouts outlasted the retries.
            TransientServiceError: 429/5xx answers outlasted the retries.
            PermanentServiceError: Any other 4xx.
        """
        if url is not None:
            target = httpx.URL(url)
            if not self.same_origin(target):
                raise ResponseError(
                    f"{method} {safe_url(target)}: refusing to send credentials to another host "
                    f"than {self.endpoint}",
                    method=method,
                    url=safe_url(target),
                )
        else:
            target = httpx.URL(f"{self.endpoint}/{path.lstrip('/')}")
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if "api-version" not in target.params:
            query["api-version"] = api_version
        if query:
            target = target.copy_merge_params(query)
        return self.retry.run(
            lambda: self.send(
                method, target, json=json, content=content, headers=headers, expected=expected
            ),
            what=f"{method} {target.path}",
        )

    def parse(self, model: type[M], response: httpx.Response) -> M:
        """Parse a success body into ``model``.

        Args:
            model: The pydantic model.
            response: The response.

        Returns:
            The parsed model.

        Raises:
            ResponseError: The body is not JSON or does not fit the model.
        """
        return parse_model(model, response, describe_request(response.request))

    # ------------------------------------------------------------------ paging

    def page(
        self,
        model: type[M],
        path: str,
        *,
        api_version: str,
        params: dict[str, Any],
        next_link: str | None = None,
    ) -> tuple[list[M], str | None]:
        """Get one page of a list (one logical call).

        Args:
            model: The model of one item.
            path: The list's path (its first page).
            api_version: The API's version.
            params: Query parameters of the first page (ignored with ``next_link``).
            next_link: A ``nextLink`` from a previous page.

        Returns:
            The page's items and the next page's link (``None`` on the last page).

        Raises:
            ServiceError: The request failed after retries.
            ResponseError: The answer is malformed, or ``nextLink`` points to another host.
        """
        response = self.request(
            "GET",
            path,
            api_version=api_version,
            params=None if next_link else params,
            url=next_link,
        )
        page = self.parse(Page, response)
        subject = f"GET /{path.lstrip('/')}: a listed item"
        items = [fit_model(model, item, response, subject) for item in page.value]
        return items, page.next_link or None

    def paged(
        self, model: type[M], path: str, *, api_version: str, params: dict[str, Any]
    ) -> Iterator[M]:
        """Iterate over every item of a list, following ``nextLink`` (one call per page).

        Args:
            model: The model of one item.
            path: The list's path.
            api_version: The API's version.
            params: Query parameters of the first page.

        Yields:
            Each item.

        Raises:
            ServiceError: A page request failed after retries.
            ResponseError: An answer is malformed, or ``nextLink`` points to another host.
        """
        next_link: str | None = None
        while True:
            items, next_link = self.page(
                model, path, api_version=api_version, params=params, next_link=next_link
            )
            yield from items
            if not next_link:
                return

    # ------------------------------------------------------------------ downloads

    @contextlib.contextmanager
    def stream(self, url: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[ByteStream]:
        """Open a result URL for streaming (one GET, not counted against the rate budget).

        The credential is sent only when the URL is on the endpoint's own origin (e.g. an
        emulator), never to storage on another host; the URL's query (a SAS) never appears in
        a message.

        Args:
            url: The result URL.
            chunk_size: Bytes per chunk.

        Yields:
            ``(length, chunks)``: the declared ``Content-Length`` (``None`` when absent or the
            body is encoded) and an iterator of the body's chunks.

        Raises:
            ResultExpiredError: Storage answered 403 or 404 (the signed URL expired or the
                result was deleted): get the job again for a fresh URL.
            DownloadError: Any other status, or a transport failure (also while reading).
            ValueError: ``chunk_size`` is not positive.
        """
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        shown = safe_url(url)
        auth = self._auth if self._auth is not None and self.same_origin(httpx.URL(url)) else None
        try:
            with self._http.stream(
                "GET",
                url,
                timeout=self.timeout,
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                follow_redirects=True,
            ) as response:
                status = response.status_code
                if status in (403, 404):
                    raise ResultExpiredError(
                        f"GET {shown}: storage answered {status}: the result URL expired or the "
                        "result was deleted; fetch the job again for a fresh URL"
                    )
                if not 200 <= status < 300:
                    raise DownloadError(f"GET {shown}: storage answered {status}")
                yield _declared_length(response), response.iter_bytes(chunk_size)
        except httpx.HTTPError as exc:
            text = scrub(str(exc) or type(exc).__name__, self.secrets()).replace(url, shown)
            raise DownloadError(f"GET {shown}: {type(exc).__name__}: {text}") from None


def _declared_length(response: httpx.Response) -> int | None:
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    raw = response.headers.get("Content-Length")
    if raw is None or encoding not in ("", "identity"):
        return None
    try:
        return int(raw)
    except ValueError:
        return None
