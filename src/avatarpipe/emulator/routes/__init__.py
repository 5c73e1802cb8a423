"""The emulator's routes, one router per concern, and what their handlers share.

``jobs`` (batch avatar), ``voices`` (custom voice), ``results`` (signed result downloads) and
``admin`` (``/emulator/``, not an Azure API). Each module has ``router(resource)``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from avatarpipe.emulator.apierror import ApiError

__all__ = ["json_body", "json_response", "paging", "version"]


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON answer."""
    return JSONResponse(body, status_code=status, headers=headers)


def version(request: Request) -> str:
    """The request's ``api-version`` (checked by the gateway already)."""
    return request.query_params.get("api-version", "")


async def json_body(request: Request) -> bytes:
    """The raw body of a create (PUT), which must be sent as JSON.

    Raises:
        ApiError: 415 ``UnsupportedMediaType`` when the body is declared as something else (or
            not declared at all).
    """
    raw = await request.body()
    declared = request.headers.get("content-type")
    media = (declared or "").split(";", 1)[0].strip().lower()
    if (declared is not None or raw) and not (
        media == "application/json"
        or (media.startswith("application/") and media.endswith("+json"))
    ):
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"The content type '{declared or '(none)'}' is not supported: send the request body "
            "as application/json.",
        )
    return raw


def paging(request: Request) -> tuple[int, int]:
    """``skip`` and ``maxpagesize`` (at most 100) of a list request.

    Raises:
        ApiError: 400 ``BadArgument`` for a value that is not a valid number.
    """

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
