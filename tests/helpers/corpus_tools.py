"""Helpers for the bad-input corpus and the secrets scan.

* :func:`load_cases` reads ``tests/corpus/cases.yaml``.
* :func:`run_cli` runs the real ``avatarpipe`` command in-process and splits its output.
* :func:`check_one_line_error` asserts the "one line naming what and where" bar.
* :func:`visible_files` lists what a run left under non-hidden names.
* :class:`MisbehavingServer` is a tiny loopback HTTP server whose answers a test scripts
  (broken JSON, truncated bodies, lying ``Content-Length``), stopped by its context manager.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def load_cases(kind: str | None = None) -> list[dict[str, Any]]:
    """The cases of ``cases.yaml`` (of one ``kind`` when given)."""
    cases: list[dict[str, Any]] = yaml.safe_load((CORPUS / "cases.yaml").read_text())
    return [c for c in cases if kind is None or c["kind"] == kind]


@dataclass
class CliResult:
    """What one CLI invocation did."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


def run_cli(args: list[str]) -> CliResult:
    """Run ``avatarpipe ARGS`` in this process (real typer app, real settings, real flows)."""
    from avatarpipe.cli import app

    result = CliRunner().invoke(app, args, catch_exceptions=True)
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return CliResult(result.exit_code, result.stdout, result.stderr, exc)


def error_lines(stderr: str) -> list[str]:
    """The non-empty stderr lines that are not progress or informational chatter."""
    skip = ("No AVATARPIPE_SPEECH_ENDPOINT", "Watch runs in the Prefect UI")
    lines = [line for line in stderr.splitlines() if line.strip()]
    return [line for line in lines if not line.startswith(skip) and not re.match(r"^\[\s*\d", line)]


def check_one_line_error(
    result: CliResult,
    *,
    exit_code: int,
    pattern: str,
    names: tuple[str, ...] = (),
) -> str:
    """Assert exit code and ``error:`` lines: the first matching ``pattern`` and naming ``names``.

    A script with several problems gets one line for each (up to 20, then a count), so there
    may be more than one line; the first says how many more follow.

    Returns:
        The first error line.
    """
    assert result.exception is None, (
        f"uncaught {type(result.exception).__name__}: {result.exception}"
    )
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.exit_code == exit_code, (result.exit_code, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors, f"want an error line, got:\n{result.stderr}"
    assert len(errors) <= 21, f"at most 20 problems and a count, got:\n{result.stderr}"
    if len(errors) > 1:
        assert errors[0].endswith(f"(and {len(errors) - 1} more)"), errors[0]
    line = errors[0]
    assert re.search(pattern, line), f"{pattern!r} not in {line!r}"
    for name in names:
        assert name in line, f"{name!r} not in {line!r}"
    return line


def visible_files(root: Path) -> list[Path]:
    """Files under ``root`` none of whose path parts (below ``root``) start with a dot."""
    if not root.exists():
        return []
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


# ------------------------------------------------------------------ a misbehaving service


@dataclass
class Reply:
    """One scripted answer: status, headers, body; ``cut_at`` closes the socket after N bytes."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut_at: int | None = None


Route = Callable[[str, str], Reply | None]
"""Given (method, path with query), the reply, or ``None`` for a 404."""


class MisbehavingServer:
    """A loopback HTTP/1.1 server on a free port answering with whatever ``route`` says.

    Use as a context manager; it is shut down and its thread joined on exit.
    """

    def __init__(self, route: Route) -> None:
        self.route = route
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append((self.command, self.path, dict(self.headers.items())))
                reply = outer.route(self.command, self.path) or Reply(404, b'{"error":{}}')
                self.send_response(reply.status)
                headers = {"Content-Length": str(len(reply.body)), **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                if reply.cut_at is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                if reply.cut_at is None:
                    self.wfile.write(reply.body)
                else:
                    self.wfile.write(reply.body[: reply.cut_at])
                    self.wfile.flush()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_PUT = do_POST = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> MisbehavingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
