"""Authentication for the Speech REST APIs: a resource key or a bearer token.

:func:`avatarpipe.connect.open_speech` decides which one the settings ask for.

The credential is applied per request (never set on the shared ``httpx.Client``), so it reaches
only the Speech endpoint's own origin and never a storage URL on another host. Neither the key nor
the token appears in a ``repr``, a log line or an error message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator

import httpx
from pydantic import SecretStr

from avatarpipe.errors import ConfigError, redact

__all__ = ["BearerAuth", "KeyAuth", "redact_httpx_logs", "scrub"]

KEY_HEADER = "Ocp-Apim-Subscription-Key"


class KeyAuth(httpx.Auth):
    """Sends ``Ocp-Apim-Subscription-Key: <key>``.

    Args:
        key: The Speech resource key.

    Raises:
        ConfigError: The key is empty.
    """

    def __init__(self, key: str | SecretStr) -> None:
        secret = key if isinstance(key, SecretStr) else SecretStr(key)
        if not secret.get_secret_value().strip():
            raise ConfigError("speech key: must not be empty")
        self._key = secret

    def secret_values(self) -> list[str]:
        """The exact secret strings this auth sends (to scrub them from any text).

        Returns:
            The key.
        """
        return [self._key.get_secret_value().strip()]

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the key header (and drop any Authorization header).

        Args:
            request: The outgoing request.

        Yields:
            The request with the header set.
        """
        request.headers.pop("Authorization", None)
        request.headers[KEY_HEADER] = self._key.get_secret_value().strip()
        yield request

    def __repr__(self) -> str:
        return "KeyAuth(key='**********')"


class BearerAuth(httpx.Auth):
    """Sends ``Authorization: Bearer <token>``.

    Args:
        token: A token, or a callable returning a fresh one (called once per HTTP attempt, so
            it can cache and refresh as it likes).

    Raises:
        ConfigError: A fixed token is empty.
    """

    def __init__(self, token: str | SecretStr | Callable[[], str]) -> None:
        if isinstance(token, str | SecretStr):
            fixed = token if isinstance(token, SecretStr) else SecretStr(token)
            if not fixed.get_secret_value().strip():
                raise ConfigError("speech token: must not be empty")
            self._get: Callable[[], str] = lambda: fixed.get_secret_value()
        else:
            self._get = token
        self._last: str | None = None

    def secret_values(self) -> list[str]:
        """The exact secret strings this auth sent (to scrub them from any text).

        Returns:
            The last token sent, if any.
        """
        return [self._last] if self._last else []

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the bearer header (and drop any key header).

        Args:
            request: The outgoing request.

        Yields:
            The request with the header set.

        Raises:
            ConfigError: The token callable returned an empty token.
        """
        token = self._get().strip()
        if not token:
            raise ConfigError("speech token: the token provider returned an empty token")
        self._last = token
        request.headers.pop(KEY_HEADER, None)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(token='**********')"


def scrub(text: str, secrets: list[str]) -> str:
    """Replace each exact secret (and anything :func:`redact` recognises) with ``***``.

    Args:
        text: Any text, e.g. a service's error message.
        secrets: Exact values to mask (keys, tokens); empty or very short ones are ignored.

    Returns:
        The masked text.
    """
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return redact(text)


class _RedactingFilter(logging.Filter):
    """Formats the record once and masks SAS signatures and auth headers in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER = _RedactingFilter()


def redact_httpx_logs() -> None:
    """Install (once) a filter on the HTTP libraries' loggers that masks secrets.

    httpx logs every request URL at INFO, and result URLs carry SAS signatures; urllib3 (under
    azure-storage-blob) logs every request line, SAS query included, at DEBUG. Filters are not
    inherited by child loggers, so each logger that emits is named.
    """
    for name in ("httpx", "httpcore", "urllib3.connectionpool"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
