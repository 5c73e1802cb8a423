"""The emulator's HTTP surface (FastAPI): the Azure API routes, result downloads and ``/emulator/``.

Every request first passes a gateway (like Azure's API Management in front of the service): it
sets ``apim-request-id``, checks the key, the api-version, the rate limit and the injected faults,
and counts the answer per route template for ``GET /emulator/stats``, keeping the arrival time of
each Azure API request. Every error, including unknown routes, wrong methods and malformed
requests, is ``{"error": {"code", "message"}}`` with the ``x-ms-error-code`` header.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote_plus

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError as FastApiValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from avatarpipe.emulator.apierror import ApiError, error_body
from avatarpipe.emulator.config import EmulatorConfig
from avatarpipe.emulator.rendering import Renderer
from avatarpipe.emulator.resource import (
    AVATAR_API_VERSIONS,
    CUSTOM_VOICE_API_VERSIONS,
    EmulatedResource,
)
from avatarpipe.emulator.routes import admin, jobs, results, voices
from avatarpipe.emulator.store import Store

__all__ = ["EmulatorApp", "create_app", "load_renderer"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HTTP_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "BadRequest",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


def load_renderer(config: EmulatorConfig) -> Renderer:
    """Return the configured renderer.

    ``real`` imports ``avatarpipe.emulator.render.AvatarRenderer`` and falls back to the
    placeholder, with a warning, only when that import fails.

    Args:
        config: The emulator configuration.

    Returns:
        A renderer.
    """
    from avatarpipe.emulator.placeholder import PlaceholderRenderer

    if config.renderer == "real":
        try:
            module = importlib.import_module("avatarpipe.emulator.render")
            renderer: Renderer = module.AvatarRenderer()
            return renderer
        except (ImportError, AttributeError) as exc:
            log.warning("emulator: real renderer unavailable (%s); using the placeholder", exc)
    return PlaceholderRenderer()


def _error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    target: str | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(code, message, target),
        status_code=status,
        headers={"x-ms-error-code": code, **(headers or {})},
    )


def _api(prefix: str) -> str | None:
    if prefix.startswith("/avatar/") or prefix == "/avatar":
        return "avatar"
    if prefix.startswith("/customvoice/") or prefix == "/customvoice":
        return "customvoice"
    return None


def _kind(method: str, template: str) -> str:
    if method == "PUT":
        return "create"
    if method == "DELETE":
        return "delete"
    if method == "POST":
        return "action"
    return "read" if "{" in template else "list"


class EmulatorApp(FastAPI):
    """FastAPI with the emulator's gateway in front (outside every middleware)."""

    resource: EmulatedResource
    api_routes: list[BaseRoute]
    """Every route of the emulator, to name the template a request matches (for stats)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: D102
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        await self._gateway(scope, receive, send)

    def _template(self, scope: Scope) -> tuple[str, bool]:
        partial = None
        for route in self.api_routes:
            match, _ = route.matches(scope)
            path = getattr(route, "path", "")
            if match == Match.FULL:
                return path, True
            if match == Match.PARTIAL and partial is None:
                partial = path
        return (partial, True) if partial else ("(unmatched)", False)

    async def _gateway(self, scope: Scope, receive: Receive, send: Send) -> None:
        res = self.resource
        arrived = time.time()
        request_id = str(uuid.uuid4())
        method = scope["method"]
        template, matched = self._template(scope)
        route_key = f"{method} {template}"
        status_seen: list[int] = []

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(int(message["status"]))
                headers = list(message.get("headers", []))
                headers.append((b"apim-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        api = _api(scope["path"])

        def count(status: str) -> None:
            try:
                res.store.count_request(route_key, status)
                if api is not None:
                    res.store.note_arrival(arrived, route_key, status)
            except Exception:  # pragma: no cover - stats never break a request
                log.exception("emulator: counting a request failed")

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        early: Response | None = None
        if api is not None or scope["path"].startswith("/emulator/"):
            problem = res.auth_problem(headers)
            if problem is not None and (api is not None or res.key is not None):
                early = _error(401, "Unauthorized", problem)
        if early is None and api is not None and matched:
            early = await self._azure_checks(scope, api, method, template, send, route_key)
            if early is None and scope.get("emulator.dropped"):
                return
        if early is not None:
            await early(scope, receive, send_wrapped)
            count(str(status_seen[0]) if status_seen else "dropped")
            return
        try:
            await super().__call__(scope, receive, send_wrapped)
        finally:
            count(str(status_seen[0]) if status_seen else "dropped")

    async def _azure_checks(
        self, scope: Scope, api: str, method: str, template: str, send: Send, route_key: str
    ) -> Response | None:
        res = self.resource
        query = dict(
            pair.split("=", 1) if "=" in pair else (pair, "")
            for pair in scope.get("query_string", b"").decode("latin-1").split("&")
            if pair
        )
        version = unquote_plus(query.get("api-version", ""))
        supported = AVATAR_API_VERSIONS if api == "avatar" else CUSTOM_VOICE_API_VERSIONS
        if not version:
            return _error(
                400,
                "BadRequest",
                f"The api-version query parameter is required. Supported versions: "
                f"{', '.join(supported)}.",
                target="api-version",
            )
        if version not in supported:
            return _error(
                400,
                "BadRequest",
                f"The api-version '{version}' is not supported. Supported versions: "
                f"{', '.join(supported)}.",
                target="api-version",
            )
        wait = res.limiter.check(_kind(method, template))
        if wait is not None:
            res.store.bump("ratelimit.429")
            return _error(
                429,
                "TooManyRequests",
                "Too many requests: the rate limit of this Speech resource is exceeded. "
                "Please retry later.",
                headers={"Retry-After": str(wait)},
            )
        fault = res.faults.for_request()
        if fault is None:
            return None
        res.store.bump(f"fault.{fault.kind}")
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
            return None
        if fault.kind == "reset":
            res.store.count_request(route_key, "dropped")
            self._drop(send)
            scope["emulator.dropped"] = True
            return None
        if fault.kind == "429":
            return _error(
                429,
                "TooManyRequests",
                "Too many requests. Please retry later.",
                headers={"Retry-After": "1"},
            )
        if fault.kind == "500":
            return _error(500, "InternalServerError", "An internal server error occurred.")
        return _error(503, "ServiceUnavailable", "The service is temporarily unavailable.")

    @staticmethod
    def _drop(send: Send) -> None:
        """Abort the connection without an answer (uvicorn's transport behind ``send``)."""
        cycle = getattr(send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if cycle is None or transport is None:
            raise ConnectionAbortedError("emulator: injected dropped connection")
        cycle.disconnected = True
        transport.abort()


def create_app(config: EmulatorConfig, renderer: Renderer | None = None) -> EmulatorApp:
    """Build the emulator's FastAPI app, its resource and (not started) worker.

    The worker is started and stopped with the app's lifespan; ``app.state.worker`` holds it.

    Args:
        config: The emulator configuration.
        renderer: Render with this instead of the configured renderer (tests).

    Returns:
        The app.

    Raises:
        ConfigError: The seed file is missing or invalid.
    """
    from avatarpipe.emulator.worker import JobWorker

    config.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(config.state_dir / "emulator.sqlite3")
    resource = EmulatedResource(config, store)
    if config.seed is not None:
        from avatarpipe.emulator.seed import load_seed_file

        load_seed_file(resource, config.seed, exact=config.seed_exact)
    worker = JobWorker(resource, renderer or load_renderer(config))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker.start()
        try:
            yield
        finally:
            await asyncio.to_thread(worker.stop)
            store.close()

    app = EmulatorApp(
        title="avatarpipe Speech emulator",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.resource = resource
    app.state.worker = worker
    app.state.store = store
    _add_error_handlers(app)
    app.api_routes = []
    for part in (jobs, voices, results, admin):
        router = part.router(resource)
        app.include_router(router)
        app.api_routes.extend(router.routes)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Render every error as ``{"error": {"code", "message"}}`` with ``x-ms-error-code``."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers, exc.target)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "BadRequest")
        if exc.status_code == 404:
            message = f"Resource not found: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"The method {request.method} is not allowed on {request.url.path}."
        else:
            message = str(exc.detail)
        return _error(exc.status_code, code, message)

    @app.exception_handler(FastApiValidationError)
    async def _validation_error(_: Request, exc: FastApiValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, "BadRequest", f"{loc}: {first.get('msg')}")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("emulator: unhandled error")
        return _error(500, "InternalServerError", "An internal server error occurred.")
