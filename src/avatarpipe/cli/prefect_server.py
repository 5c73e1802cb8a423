"""The temporary Prefect server that ``avatarpipe run`` owns when no ``PREFECT_API_URL`` is set.

Why not Prefect's own ephemeral server: ``get_client()`` starts ``SubprocessASGIServer``
(``prefect/server/api/server.py``), a ``uvicorn`` child whose app migrates the database of
``PREFECT_HOME`` (all Alembic revisions, one transaction each) and registers the block types in
its lifespan, before ``/api/health`` answers. On a fresh home that is 15 to 30 s of CPU on
2 vCPUs, more when the machine is busy. Prefect waits
``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (20) for it, counted as the sum of its
0.1 s sleeps, so about 20 to 35 s of wall time, then raises ``RuntimeError: Timed out while
attempting to connect to ephemeral Prefect API server`` with a traceback and kills the
half-migrated server. Whether it wins that race is a matter of load, not of standard input: the
server never reads it (under strace its only use of fd 0 is a ``TCGETS``/``TIOCGWINSZ``), and
runs with a terminal, a pipe or ``/dev/null`` fail alike on a busy machine. What can make a later
try "work" is that each killed try keeps the migrations it finished, so the home is further along
every time. Prefect's server also lives in the CLI's process group without a parent-death
signal, and is stopped only by ``atexit``: a SIGTERM or SIGKILL of the CLI orphans it.

:func:`prefect_api` replaces it: the same ``uvicorn`` command, started by the CLI as a child that
dies with it (:mod:`avatarpipe.processes`), waited for up to :data:`START_TIMEOUT_S` (one line
on stderr if it takes a while), used through ``temporary_settings`` (``os.environ`` is read only
when Prefect is imported), and stopped when the run ends, however it ends. The server's lifespan
is what migrates the database, exactly as ``prefect server database upgrade -y`` would, so no
separate migration step is run. The database stays the home's, so ``prefect server start`` shows
the runs later.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import httpx

from avatarpipe.errors import AvatarpipeError
from avatarpipe.processes import child_process_kwargs, stop_child

__all__ = ["START_TIMEOUT_S", "PrefectServerError", "prefect_api"]

START_TIMEOUT_S = 120.0
"""Seconds to wait for the temporary server's ``/api/health`` (a first start migrates)."""

_NOTICE_AFTER_S = 3.0
_STOP_GRACE_S = 5.0
_NOTICE = "starting a local Prefect server (a first start migrates its database: 20 to 40 s)..."
_ADVICE = (
    "run `uv run prefect server database upgrade -y` once, or set PREFECT_API_URL to a running "
    "Prefect server"
)


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception)\w*: ")


class PrefectServerError(AvatarpipeError):
    """The temporary Prefect server did not start (the CLI exits 1)."""


@contextmanager
def prefect_api() -> Iterator[str]:
    """Yield the Prefect API URL a run uses: ``PREFECT_API_URL``, or a temporary server's.

    Without ``PREFECT_API_URL`` (and with Prefect's ephemeral mode on, its default), a server on
    the home's database is started, Prefect is pointed at it for the duration of the block, and
    it is stopped (SIGTERM to its process group, SIGKILL after a grace period) when the block
    ends, whatever way it ends.

    Yields:
        The API URL (``http://127.0.0.1:<port>/api`` for a temporary server).

    Raises:
        PrefectServerError: The temporary server exited or did not answer in time.
    """
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        yield str(settings.api.url or "")  # a configured server, or Prefect's own error
        return
    timeout = max(START_TIMEOUT_S, float(settings.server.ephemeral.startup_timeout_seconds))
    with tempfile.TemporaryFile(mode="w+", prefix="avatarpipe-prefect-") as log:
        proc, url = _start(settings.to_environment_variables(exclude_unset=True), log)
        try:
            _wait_healthy(proc, url, log, timeout)
            with temporary_settings(updates={PREFECT_API_URL: url}):
                try:
                    yield url
                finally:
                    _drain_workers()
        finally:
            stop_child(proc, grace_s=_STOP_GRACE_S)


def _start(prefect_env: dict[str, str], log: IO[str]) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server the way ``SubprocessASGIServer`` does, on a free loopback port."""
    import prefect

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {
        **os.environ,
        **prefect_env,
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "ERROR",  # its errors reach our log file
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",  # only the services an ephemeral server runs
        "PREFECT__SERVER_FINAL": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(prefect.__module_path__.parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
    proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
        **child_process_kwargs(),
    )
    return proc, f"http://127.0.0.1:{port}/api"


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: IO[str], timeout: float) -> None:
    """Poll ``/api/health`` until it answers 200 (one line on stderr if that takes a while).

    Raises:
        PrefectServerError: The server exited, or did not answer within ``timeout`` seconds.
    """
    start = time.monotonic()
    noticed = False
    with httpx.Client(timeout=2.0) as client:
        while True:
            try:
                if client.get(f"{url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            waited = time.monotonic() - start
            if proc.poll() is not None:
                raise PrefectServerError(
                    f"the local Prefect server exited with code {proc.returncode} while "
                    f"starting{_last_line(log)}; {_ADVICE}"
                )
            if waited >= timeout:
                raise PrefectServerError(
                    f"the local Prefect server did not answer within {timeout:.0f} s; {_ADVICE}"
                )
            if not noticed and waited >= _NOTICE_AFTER_S:
                print(_NOTICE, file=sys.stderr, flush=True)
                noticed = True
            time.sleep(0.25)


def _last_line(log: IO[str]) -> str:
    """`` (<the server's last error>)``: its last exception line, else its last line, or ``""``."""
    log.flush()
    log.seek(0)
    lines = [line.strip() for line in log.read().splitlines() if line.strip()]
    errors = [line for line in lines if _EXCEPTION_LINE.match(line)]
    chosen = errors or lines
    return f" ({chosen[-1][:300]})" if chosen else ""


def _drain_workers() -> None:
    """Send the run's pending logs and events before the server goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)
