"""The error the emulator's handlers raise, rendered as the service's error shape."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "error_body"]


def error_body(code: str, message: str, target: str | None = None) -> dict[str, Any]:
    """Return ``{"error": {"code", "message"[, "target"]}}``."""
    error: dict[str, Any] = {"code": code, "message": message}
    if target:
        error["target"] = target
    return {"error": error}


class ApiError(Exception):
    """An error answer of the emulated service: status, ``error.code`` and message.

    Attributes:
        status: HTTP status.
        code: ``error.code`` (one of the spec's ``ErrorCode`` values) and ``x-ms-error-code``.
        message: ``error.message``.
        target: ``error.target``, when useful.
        headers: Extra response headers (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """Return the JSON body."""
        return error_body(self.code, self.message, self.target)


def bad_request(message: str, target: str | None = None) -> ApiError:
    """Return a 400 ``BadRequest``."""
    return ApiError(400, "BadRequest", message, target=target)


def not_found(message: str) -> ApiError:
    """Return a 404 ``NotFound``."""
    return ApiError(404, "NotFound", message)
