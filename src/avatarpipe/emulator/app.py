"""The emulator's HTTP surface (FastAPI): the Azure API routes, result downloads and ``/emulator/``.

Every request first passes a gateway (like Azure's API Management in front of the service): it
sets ``apim-request-id``, checks the key, the api-version, the rate limit and the injected faults,
and counts the answer per route template for ``GET /emulator/stats``. Every error, including
unknown routes, wrong methods and malformed requests, is ``{"error": {"code", "message"}}`` with
the ``x-ms-error-code`` header.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError as FastApiValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from avatarpipe.emulator.apierror import ApiError, bad_request, error_body
from avatarpipe.emulator.config import EmulatorConfig
from avatarpipe.emulator.renderer import Renderer
from avatarpipe.emulator.service import (
    AVATAR_API_VERSIONS,
    CUSTOM_VOICE_API_VERSIONS,
    RESULT_CONTAINER,
    EmulatedResource,
    iso,
)
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: D102
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        await self._gateway(scope, receive, send)

    def _template(self, scope: Scope) -> tuple[str, bool]:
        partial = None
        for route in self.router.routes:
            match, _ = route.matches(scope)
            path = getattr(route, "path", "")
            if match == Match.FULL:
                return path, True
            if match == Match.PARTIAL and partial is None:
                partial = path
        return (partial, True) if partial else ("(unmatched)", False)

    async def _gateway(self, scope: Scope, receive: Receive, send: Send) -> None:
        res = self.resource
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

        def count(status: str) -> None:
            try:
                res.store.count_request(route_key, status)
            except Exception:  # pragma: no cover - stats never break a request
                log.exception("emulator: counting a request failed")

        api = _api(scope["path"])
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        early: Response | None = None
        if api is not None or scope["path"].startswith("/emulator/"):
            admin = api is None
            if (not admin or res.key is not None) and not res.authorized(headers):
                early = _error(
                    401,
                    "Unauthorized",
                    "Access denied due to invalid subscription key or wrong API endpoint. Make "
                    "sure to provide a valid key for an active subscription and use a correct "
                    "regional API endpoint for your resource.",
                )
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
        from urllib.parse import unquote_plus

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


async def _body(request: Request) -> bytes:
    return await request.body()


def _paging(request: Request) -> tuple[int, int]:
    def number(name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(
                400, "BadArgument", f"The {name} '{raw}' is not a valid integer.", target=name
            ) from None
        if value < 0 or (name == "maxpagesize" and value == 0):
            raise ApiError(400, "BadArgument", f"The {name} '{raw}' is out of range.", target=name)
        return value

    return number("skip", 0), min(number("maxpagesize", 100), 100)


def _version(request: Request) -> str:
    return request.query_params.get("api-version", "")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _storage_error(status: int, code: str, message: str, detail: str | None = None) -> Response:
    extra = f"<AuthenticationErrorDetail>{detail}</AuthenticationErrorDetail>" if detail else ""
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}\nRequestId:{uuid.uuid4()}\n"
        f"Time:{iso(__import__('time').time())}</Message>{extra}</Error>"
    )
    return Response(
        xml, status_code=status, media_type="application/xml", headers={"x-ms-error-code": code}
    )


def _parse_seed(raw: bytes, content_type: str) -> Any:
    try:
        if "json" in content_type:
            return json.loads(raw)
        return yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"The seed is not valid YAML or JSON: {exc}") from None


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
    from contextlib import asynccontextmanager

    from avatarpipe.emulator.worker import JobWorker

    config.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(config.state_dir / "emulator.sqlite3")
    resource = EmulatedResource(config, store)
    if config.seed is not None:
        from avatarpipe.emulator.seed import load_seed_file

        load_seed_file(resource, config.seed)
    worker = JobWorker(resource, renderer or load_renderer(config))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
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

    # ------------------------------------------------------------ error shapes

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

    # ------------------------------------------------------------ batch avatar

    @app.get("/avatar/batchsyntheses")
    @app.get("/avatar/batchsyntheses/")
    async def list_jobs(request: Request) -> JSONResponse:
        skip, top = _paging(request)
        return _json(await asyncio.to_thread(resource.list_jobs, skip, top, _version(request)))

    @app.put("/avatar/batchsyntheses/{id}")
    async def create_job(id: str, request: Request) -> JSONResponse:
        raw = await _body(request)
        body, headers = await asyncio.to_thread(
            resource.create_job,
            id,
            raw,
            request.headers.get("operation-id"),
            _version(request),
        )
        return _json(body, 201, headers)

    @app.get("/avatar/batchsyntheses/{id}")
    async def get_job(id: str) -> JSONResponse:
        return _json(await asyncio.to_thread(resource.get_job, id))

    @app.delete("/avatar/batchsyntheses/{id}")
    async def delete_job(id: str) -> Response:
        await asyncio.to_thread(resource.delete_job, id)
        return Response(status_code=204)

    @app.get("/avatar/operations/{id}")
    async def avatar_operation(id: str) -> JSONResponse:
        return _json(resource.get_operation("avatar", id))

    # ------------------------------------------------------------ custom voice

    @app.get("/customvoice/operations/{id}")
    async def cv_operation(id: str) -> JSONResponse:
        return _json(resource.get_operation("customvoice", id))

    def _cv_list(kind: str) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def handler(request: Request) -> JSONResponse:
            skip, top = _paging(request)
            return _json(
                resource.list_cv(
                    kind, skip, top, request.query_params.get("filter"), _version(request)
                )
            )

        return handler

    def _cv_get(kind: str) -> Callable[[str], Awaitable[JSONResponse]]:
        async def handler(id: str) -> JSONResponse:
            return _json(resource.get_cv(kind, id).body)

        return handler

    def _cv_delete(kind: str) -> Callable[[str, Request], Awaitable[Response]]:
        async def handler(id: str, request: Request) -> Response:
            force = request.query_params.get("forceDelete", "false").lower() == "true"
            resource.delete_cv(kind, id, force)
            return Response(status_code=204)

        return handler

    for kind in ("projects", "models", "endpoints"):
        app.add_api_route(f"/customvoice/{kind}", _cv_list(kind), methods=["GET"])
        app.add_api_route(f"/customvoice/{kind}/{{id}}", _cv_get(kind), methods=["GET"])
        app.add_api_route(f"/customvoice/{kind}/{{id}}", _cv_delete(kind), methods=["DELETE"])

    @app.put("/customvoice/projects/{id}")
    async def create_project(id: str, request: Request) -> JSONResponse:
        return _json(resource.create_project(id, await _body(request), _version(request)), 201)

    @app.put("/customvoice/models/{id}")
    async def create_model(id: str, request: Request) -> JSONResponse:
        body, headers = resource.create_model(
            id, await _body(request), request.headers.get("operation-id"), _version(request)
        )
        return _json(body, 201, headers)

    @app.put("/customvoice/endpoints/{id}")
    async def create_endpoint(id: str, request: Request) -> JSONResponse:
        body, headers = resource.create_endpoint(
            id, await _body(request), request.headers.get("operation-id"), _version(request)
        )
        return _json(body, 201, headers)

    @app.post("/customvoice/endpoints/{id}:suspend")
    async def suspend_endpoint(id: str, request: Request) -> JSONResponse:
        body, headers = resource.endpoint_action(
            id, "suspend", request.headers.get("operation-id"), _version(request)
        )
        return _json(body, 202, headers)

    @app.post("/customvoice/endpoints/{id}:resume")
    async def resume_endpoint(id: str, request: Request) -> JSONResponse:
        body, headers = resource.endpoint_action(
            id, "resume", request.headers.get("operation-id"), _version(request)
        )
        return _json(body, 202, headers)

    # ------------------------------------------------------------ results

    @app.get(f"/results/{RESULT_CONTAINER}/{{res_hex}}/{{job_id}}/{{name}}")
    async def result_file(res_hex: str, job_id: str, name: str, request: Request) -> Response:
        path = resource.result_path(job_id, name)
        problem = resource.check_signature(
            path, request.query_params.get("se"), request.query_params.get("sig")
        )
        if res_hex != resource.resource_hex:
            problem = problem or "Signature did not match."
        if problem is not None:
            return _storage_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of "
                "Authorization header is formed correctly including the signature.",
                problem,
            )
        job = resource.store.get_job(job_id)
        file = resource.job_dir(job) / name if job is not None else None
        if job is None or file is None or "/" in name or name.startswith(".") or not file.is_file():
            return _storage_error(404, "BlobNotFound", "The specified blob does not exist.")
        resource.store.bump("downloads")
        resource.store.bump("downloads.summary" if name == "summary.json" else "downloads.video")
        media = "application/json" if name.endswith(".json") else None
        return FileResponse(Path(file), media_type=media)

    # ------------------------------------------------------------ emulator admin

    @app.get("/emulator/avatars")
    async def list_avatars() -> JSONResponse:
        return _json({"value": [resource.avatar_view(m) for m in resource.store.list_avatars()]})

    @app.get("/emulator/avatars/{name}")
    async def get_avatar(name: str) -> JSONResponse:
        model = resource.store.get_avatar(name)
        if model is None:
            raise ApiError(404, "NotFound", f"The custom avatar model '{name}' can't be found.")
        return _json(resource.avatar_view(model))

    @app.put("/emulator/avatars/{name}")
    async def put_avatar(name: str) -> JSONResponse:
        view, created = resource.create_avatar(name)
        return _json(view, 201 if created else 200)

    @app.delete("/emulator/avatars/{name}")
    async def delete_avatar(name: str) -> Response:
        if not resource.store.delete_avatar(name):
            raise ApiError(404, "NotFound", f"The custom avatar model '{name}' can't be found.")
        return Response(status_code=204)

    @app.post("/emulator/avatars/{name}:deploy")
    async def deploy_avatar(name: str) -> JSONResponse:
        return _json(resource.deploy_avatar(name), 202)

    @app.delete("/emulator/avatars/{name}/deployment")
    async def remove_deployment(name: str) -> Response:
        resource.remove_deployment(name)
        return Response(status_code=204)

    @app.post("/emulator/seed")
    async def seed(request: Request) -> JSONResponse:
        data = _parse_seed(await _body(request), request.headers.get("content-type", ""))
        return _json({"seeded": resource.seed(data)})

    @app.get("/emulator/config")
    async def get_config() -> JSONResponse:
        return _json(resource.knobs())

    @app.put("/emulator/config")
    async def put_config(request: Request) -> JSONResponse:
        try:
            changes = json.loads(await _body(request) or b"{}")
        except ValueError:
            raise bad_request("The body is not valid JSON.") from None
        if not isinstance(changes, dict):
            raise bad_request("The body must be a JSON object.")
        resource.reconfigure(changes)
        return _json(resource.knobs())

    @app.get("/emulator/stats")
    async def stats() -> JSONResponse:
        data = resource.store.stats()
        counters: dict[str, int] = data.pop("counters")
        faults = {k.split(".", 1)[1]: v for k, v in counters.items() if k.startswith("fault.")}
        return _json(
            {
                "requests_by_route": data["requests_by_route"],
                "jobs_created": counters.get("jobs_created", 0),
                "jobs_expired": counters.get("jobs_expired", 0),
                "jobs_by_status": data["jobs_by_status"],
                "puts_by_job_id": data["puts_by_job_id"],
                "downloads": counters.get("downloads", 0),
                "downloads_by_kind": {
                    "video": counters.get("downloads.video", 0),
                    "summary": counters.get("downloads.summary", 0),
                },
                "rate_limited": counters.get("ratelimit.429", 0),
                "faults_injected": faults,
            }
        )

    return app
