"""Turning HTTP responses into models or into the right :class:`ServiceError`."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from avatarpipe.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermanentServiceError,
    RateLimitedError,
    ResponseError,
    ServiceError,
    TransientServiceError,
    redact,
)
from avatarpipe.speech.auth import scrub
from avatarpipe.speech.retry import parse_retry_after

__all__ = [
    "error_from_response",
    "fit_model",
    "parse_error_body",
    "parse_model",
    "retry_after_of",
]

M = TypeVar("M", bound=BaseModel)

_MAX_TEXT = 300


def parse_error_body(response: httpx.Response) -> tuple[str | None, str | None]:
    """Read the service's error code and message from an error response.

    Accepts ``{"error": {"code", "message"}}`` (the spec), the unwrapped ``{"code", "message"}``
    of older versions, ASP.NET problem details (``title``/``detail``) and non-JSON text.

    Args:
        response: An error response (its body already read).

    Returns:
        ``(code, message)``; either may be ``None``.
    """
    text = response.text
    try:
        data: Any = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
        snippet = " ".join(text.split())[:_MAX_TEXT]
        return None, snippet or None
    if not isinstance(data, dict):
        return None, None
    inner = data.get("error")
    if isinstance(inner, dict):
        data = inner
    elif isinstance(inner, str):
        return inner, _str(data.get("message") or data.get("error_description"))
    code = _str(data.get("code"))
    message = _str(data.get("message"))
    if code is None and message is None:
        message = _str(data.get("detail")) or _str(data.get("title"))
        if isinstance(data.get("errors"), dict) and data["errors"]:
            fields = "; ".join(
                f"{key}: {' '.join(map(str, value)) if isinstance(value, list) else value}"
                for key, value in data["errors"].items()
            )
            message = f"{message} ({fields})" if message else fields
    return code, message


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)[: _MAX_TEXT * 4]


def retry_after_of(response: httpx.Response) -> float | None:
    """Seconds the service asked to wait (``retry-after-ms`` or ``Retry-After``), if any.

    Args:
        response: The response.

    Returns:
        Seconds, or ``None`` when the service gave no usable hint.
    """
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        raw = response.headers.get(name)
        if raw:
            try:
                return max(0.0, float(raw) / 1000.0)
            except ValueError:
                pass
    return parse_retry_after(response.headers.get("Retry-After"))


def describe_request(request: httpx.Request) -> str:
    """``METHOD /path`` of a request (no host, no query: nothing secret).

    Args:
        request: The request.

    Returns:
        E.g. ``PUT /avatar/batchsyntheses/my-job``.
    """
    return f"{request.method} {request.url.path}"


def error_from_response(
    response: httpx.Response, what: str | None = None, *, secrets: list[str] | None = None
) -> ServiceError:
    """Map an error response to the exception tree.

    401/403 -> :class:`AuthenticationError`, 404 -> :class:`NotFoundError`, 409 ->
    :class:`ConflictError`, 429 -> :class:`RateLimitedError`, other 4xx ->
    :class:`PermanentServiceError`, 5xx (and anything else unexpected) ->
    :class:`TransientServiceError`.

    Args:
        response: The response (body read).
        what: ``METHOD /path`` for the message; taken from the request when omitted.
        secrets: Exact secret values (the key, the token) to mask should the body echo them.

    Returns:
        The error to raise, carrying the method and URL, status, code, message,
        ``x-ms-error-code`` and ``apim-request-id``.
    """
    status = response.status_code
    code, service_message = parse_error_body(response)
    if service_message:
        service_message = scrub(service_message, secrets or [])
    header_code = response.headers.get("x-ms-error-code")
    request_id = response.headers.get("apim-request-id")
    label = code or header_code or response.reason_phrase or "error"
    where = what or describe_request(response.request)
    message = f"{where}: {status} {label}"
    if service_message:
        message += f": {service_message}"
    if request_id:
        message += f" (apim-request-id: {request_id})"
    message = redact(message)
    fields: dict[str, Any] = {
        "method": response.request.method,
        "url": str(response.request.url),
        "status_code": status,
        "code": code,
        "service_message": service_message,
        "error_code_header": header_code,
        "request_id": request_id,
    }
    if status == 429:
        return RateLimitedError(message, retry_after=retry_after_of(response), **fields)
    if status in (401, 403):
        hint = (
            "; check AVATARPIPE_SPEECH_KEY (or AVATARPIPE_SPEECH_TOKEN) and that "
            "AVATARPIPE_SPEECH_ENDPOINT is that resource's endpoint"
        )
        return AuthenticationError(message + hint, **fields)
    if status == 404:
        return NotFoundError(message, **fields)
    if status == 409:
        return ConflictError(message, **fields)
    if 400 <= status < 500:
        return PermanentServiceError(message, **fields)
    return TransientServiceError(message, **fields)


def parse_model(model: type[M], response: httpx.Response, what: str) -> M:
    """Parse a success body into ``model``.

    Args:
        model: The pydantic model.
        response: The response (body read).
        what: ``METHOD /path`` for the message.

    Returns:
        The parsed model.

    Raises:
        ResponseError: The body is not JSON or does not fit the model.
    """
    try:
        data = response.json()
    except ValueError:
        raise ResponseError(
            f"{what}: {response.status_code} with a body that is not JSON "
            f"({len(response.content)} bytes)",
            **_where(response),
        ) from None
    return fit_model(model, data, response, f"{what}: {response.status_code} body")


def fit_model(model: type[M], data: Any, response: httpx.Response, subject: str) -> M:
    """Validate decoded JSON from ``response`` (a body, or one item of a list) into ``model``.

    Args:
        model: The pydantic model.
        data: The decoded JSON.
        response: The response it came in (for the error's method, URL and status).
        subject: What ``data`` is, for the message (``GET /avatar/batchsyntheses: a listed item``).

    Returns:
        The parsed model.

    Raises:
        ResponseError: ``data`` does not fit the model (the first problem is named).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "body"
        raise ResponseError(
            f"{subject} does not fit {model.__name__}: {loc}: {first['msg']}", **_where(response)
        ) from None


def _where(response: httpx.Response) -> dict[str, Any]:
    return {
        "method": response.request.method,
        "url": str(response.request.url),
        "status_code": response.status_code,
        "request_id": response.headers.get("apim-request-id"),
    }
