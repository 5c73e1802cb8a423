"""What the resource commands (``avatars``, ``voices``, ``teardown``, ``doctor``) share.

They act on the Speech resource of ``AVATARPIPE_SPEECH_ENDPOINT`` (Azure, or a running emulator
with ``AVATARPIPE_BACKEND=emulator``), with the same flags on both. Their requests are few, so
they spend a local request budget (``AVATARPIPE_REQUESTS_PER_MINUTE``) rather than the Prefect
limit of the runs, and an unreachable service fails within seconds instead of being retried
for minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.markup import escape

from avatarpipe.cli.display import console
from avatarpipe.connect import SpeechClients, check_auth, open_speech
from avatarpipe.errors import AvatarpipeError, ConfigError
from avatarpipe.settings import Settings, load_settings

__all__ = ["INTERACTIVE_RETRY", "fail", "interactive_settings", "resource_clients"]

INTERACTIVE_RETRY = {"max_attempts": 2, "max_retry_time_s": 15.0}
"""Retries of a command someone waits for: one retry, at most 15 s in all."""


def fail(exc: AvatarpipeError) -> NoReturn:
    """Print ``error: <one line>`` on stderr and exit with the error's exit code.

    Raises:
        typer.Exit: Always.
    """
    console.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def interactive_settings() -> Settings:
    """The settings, with the short retries of an interactive command.

    Raises:
        ConfigError: A setting is invalid.
    """
    return load_settings().model_copy(update=INTERACTIVE_RETRY)


def _require_endpoint(conf: Settings) -> str:
    """The configured endpoint, checked with its auth.

    Raises:
        ConfigError: No endpoint is set, or the auth cannot work with it.
    """
    if not conf.speech_endpoint:
        raise ConfigError(
            "AVATARPIPE_SPEECH_ENDPOINT is not set: set it to your Speech resource "
            "(https://<region>.api.cognitive.microsoft.com) or to a running emulator's URL "
            "(`avatarpipe emulator serve`) with AVATARPIPE_BACKEND=emulator; `avatarpipe doctor` "
            "checks the embedded emulator's resource file"
        )
    check_auth(conf)
    return conf.speech_endpoint


@contextmanager
def resource_clients(conf: Settings | None = None) -> Iterator[SpeechClients]:
    """The clients of the configured Speech resource (``clients.admin`` set on the emulator).

    Raises:
        ConfigError: No endpoint is set, or a setting is invalid.
    """
    conf = conf or interactive_settings()
    _require_endpoint(conf)
    with open_speech(conf) as clients:
        yield clients
