"""What the commands share: the one error line, the settings, the clients of the service.

Every command reports a failure the same way (:func:`fail`: one ``error:`` line, the error's
exit code). ``run`` and ``estimate`` read their settings with :func:`run_settings`; the
commands that operate the Speech resource (``status``, ``jobs``, ``avatars``, ``voices``,
``teardown``, ``doctor``) with :func:`interactive_settings` (short retries: someone is waiting)
and reach the service through :func:`service_clients`, which requires the endpoint and names it
when it cannot be reached. Their requests are few, so they spend a local request budget
(``AVATARPIPE_REQUESTS_PER_MINUTE``) rather than the Prefect limit of the runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.markup import escape

from avatarpipe.cli.display import console, stdout
from avatarpipe.connect import SpeechClients, check_auth, open_speech
from avatarpipe.errors import AvatarpipeError, ConfigError, ScriptError, ServiceRequestError
from avatarpipe.settings import Settings, load_settings

if TYPE_CHECKING:
    from avatarpipe.scripts.model import Script

__all__ = [
    "JSON_OPTION",
    "check_azure",
    "fail",
    "interactive_settings",
    "load_scripts",
    "print_json",
    "run_settings",
    "service_clients",
]

JSON_OPTION = typer.Option("--json", help="Print JSON (for scripts).")
"""The ``--json`` flag of the commands that list or report."""

_TEARDOWNS = ("keep", "suspend-voice", "remove-avatar", "both")


def fail(exc: AvatarpipeError) -> NoReturn:
    """Print ``error: <one line>`` on stderr and exit with the error's exit code.

    A script's further problems (notes of a :class:`ScriptError`) follow, one line each.

    Raises:
        typer.Exit: Always.
    """
    console.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    if isinstance(exc, ScriptError):
        for note in getattr(exc, "__notes__", []):
            console.print(f"[bold red]error:[/] {escape(str(note))}", soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (the ``--json`` output)."""
    stdout.print_json(json.dumps(data))


def load_scripts(script: Path, csv: Path | None) -> list[Script]:
    """Load a script, or a CSV's rows filling a template script.

    Raises:
        ScriptError: The script or the CSV is invalid (one line naming the file and place).
    """
    from avatarpipe.scripts.loader import load_bulk, load_script

    if csv is not None:
        return load_bulk(csv, script)
    return [load_script(script)]


def run_settings(backend: str | None, out: Path | None, teardown: str = "keep") -> Settings:
    """The settings of a run, with the command line's choices applied and checked.

    Raises:
        ConfigError: An option or a setting is invalid.
    """
    overrides: dict[str, Any] = {}
    if backend is not None:
        if backend not in ("emulator", "azure"):
            raise ConfigError(f"--backend: {backend!r} is not emulator or azure")
        overrides["backend"] = backend
    if out is not None:
        overrides["output_dir"] = out
    conf = load_settings(**overrides)
    if teardown not in _TEARDOWNS:
        raise ConfigError(
            f"--teardown: {teardown!r} is not keep, suspend-voice, remove-avatar or both"
        )
    return conf


def check_azure(conf: Settings) -> None:
    """Fail early when the Azure backend lacks its endpoint or credentials.

    Raises:
        ConfigError: The endpoint is missing, or the auth cannot work (see ``check_auth``).
    """
    if conf.resolved_backend != "azure":
        return
    if not conf.speech_endpoint:
        raise ConfigError(
            "AVATARPIPE_SPEECH_ENDPOINT is not set: set it to https://<region>.api.cognitive."
            "microsoft.com (or run with --backend emulator)"
        )
    check_auth(conf)


def interactive_settings(out: Path | None = None) -> Settings:
    """The settings of a command someone waits for, with short retries and timeouts.

    Args:
        out: ``--out``, the output root with the result store (default: the setting).

    Raises:
        ConfigError: A setting is invalid.
    """
    conf = run_settings(None, out)
    # Someone is waiting at the prompt: an unreachable service must fail within seconds, not
    # after the minutes of retries a run allows. One retry, 15 s of retrying, 10 s to connect
    # (the stricter of the values the commands used to pick apart); min() so that stricter
    # settings of the user still win.
    return conf.model_copy(
        update={
            "max_attempts": min(conf.max_attempts, 2),
            "max_retry_time_s": min(conf.max_retry_time_s, 15.0),
            "connect_timeout_s": min(conf.connect_timeout_s, 10.0),
        }
    )


def _require_endpoint(conf: Settings) -> str:
    """The configured endpoint, checked with its auth.

    Raises:
        ConfigError: No endpoint is set, or the auth cannot work with it.
    """
    if not conf.speech_endpoint:
        raise ConfigError(
            "AVATARPIPE_SPEECH_ENDPOINT is not set: set it to your Speech resource "
            "(https://<region>.api.cognitive.microsoft.com), or to a running emulator: "
            "`avatarpipe emulator serve --port 8765`, then "
            "AVATARPIPE_SPEECH_ENDPOINT=http://127.0.0.1:8765 AVATARPIPE_BACKEND=emulator "
            "(`avatarpipe doctor` checks the embedded emulator's resource file)"
        )
    check_auth(conf)
    return conf.speech_endpoint


@contextmanager
def service_clients(conf: Settings | None = None) -> Iterator[SpeechClients]:
    """The clients of the configured Speech resource (``clients.admin`` set on the emulator).

    Args:
        conf: The settings (default: :func:`interactive_settings`).

    Raises:
        ConfigError: No endpoint is set, or a setting is invalid.
        ServiceRequestError: Inside the block, the endpoint could not be reached (the message
            names it and says what to check).
    """
    conf = conf or interactive_settings()
    endpoint = _require_endpoint(conf)
    with open_speech(conf) as clients:
        try:
            yield clients
        except ServiceRequestError as exc:
            raise ServiceRequestError(
                f"the Speech endpoint {endpoint} could not be reached ({exc.message}); check "
                "AVATARPIPE_SPEECH_ENDPOINT and that the service (or emulator) is up"
            ) from None
