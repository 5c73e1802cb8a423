"""A first ``avatarpipe run`` on a fresh Prefect home starts as a scheduler starts it, and leaves
nothing running: real CLI processes, each with its own ``PREFECT_HOME``, on the embedded emulator.

Without ``PREFECT_API_URL`` the CLI runs its own temporary Prefect server
(``avatarpipe.cli.prefect_server``); these tests find that server, and every other process of a
run, by the test's unique ``PREFECT_HOME`` in a process's environment or command line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SCRIPT = """\
title: First start
avatar: {character: lisa, style: casual-sitting}
voice: {name: en-US-AvaNeural}
scenes:
  - text: Hello from a fresh Prefect home.
"""
RUN_TIMEOUT_S = 300


def _processes_of(marker: str) -> list[int]:
    """Pids of the processes whose environment or command line contains ``marker``."""
    needle = marker.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (
                needle in (entry / "environ").read_bytes()
                or needle in (entry / "cmdline").read_bytes()
            ):
                found.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def _gone_within(marker: str, seconds: float) -> list[int]:
    """Wait up to ``seconds`` for every process of ``marker`` to end; the ones left."""
    deadline = time.monotonic() + seconds
    while (left := _processes_of(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


class Run:
    """One ``avatarpipe run`` process with its own Prefect home and output folder."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.home = home
        self.out = root / "out"
        self.stdout = root / "stdout.txt"
        self.stderr = root / "stderr.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(
        self, *, new_session: bool = False, time_scale: float = 0.02, **extra_env: str
    ) -> None:
        script = self.root / "first-start.yaml"
        script.write_text(SCRIPT)
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("PREFECT_API_", "PREFECT_SERVER_DATABASE_"))
        }
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            AVATARPIPE_EMULATOR_TIME_SCALE=str(time_scale),
            **extra_env,
        )
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [str(BIN / "avatarpipe"), "run", str(script), "--out", str(self.out), "--no-post"],
                cwd=self.root,  # no developer .env is read
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=new_session,
            )

    def output(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()

    def wait_for(self, text: str, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while text not in self.stderr.read_text():
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, f"no {text!r} in {timeout} s:\n{self.output()}"
            time.sleep(0.2)


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Callable[[Path | None], Run]]:
    """Runs in ``tmp_path``; anything of theirs still alive at teardown is killed."""
    runs: list[Run] = []

    def make(home: Path | None = None) -> Run:
        root = tmp_path / f"run{len(runs)}"
        root.mkdir()
        if home is None:
            home = root / "prefect-home"
            home.mkdir()
        run = Run(root, home)
        runs.append(run)
        return run

    yield make
    for run in runs:
        for pid in _processes_of(str(run.home)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if run.proc is not None and run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


@pytest.fixture
def migrated_home(prefect_harness: None, tmp_path: Path) -> Path:
    """A Prefect home whose database is already migrated: a copy of the session harness's."""
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url
    assert url is not None
    source = url.get_secret_value().split("///", 1)[1]
    home = tmp_path / "migrated-home"
    home.mkdir()
    with sqlite3.connect(source) as src, sqlite3.connect(home / "prefect.db") as dst:
        src.backup(dst)  # consistent even while the harness's server writes
    return home


@pytest.mark.parametrize("new_session", [False, True], ids=["stdin-devnull", "setsid"])
def test_a_first_run_without_a_terminal_succeeds_and_leaves_nothing(
    make_run: Callable[[Path | None], Run], new_session: bool
) -> None:
    run = make_run(None)
    assert not list(run.home.iterdir()), "the Prefect home is fresh"
    run.start(new_session=new_session)
    assert run.proc is not None
    assert run.proc.wait(timeout=RUN_TIMEOUT_S) == 0, run.output()
    output = run.output()
    assert "Traceback" not in output, output
    videos = [line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("video: ")]
    assert len(videos) == 1, output
    assert Path(videos[0]).stat().st_size > 0
    # The run is in the home's own database, as the CLI's Prefect UI hint says.
    with sqlite3.connect(run.home / "prefect.db") as db:
        assert db.execute("select count(*) from flow_run").fetchone()[0] >= 1
    # No process of the run (temporary Prefect server, ffmpeg, emulator workers) is left.
    assert _gone_within(str(run.home), 2.0) == []


def test_sigkill_of_the_cli_mid_run_leaves_no_prefect_server(
    make_run: Callable[[Path | None], Run], migrated_home: Path
) -> None:
    run = make_run(migrated_home)
    run.start(time_scale=1.0)  # renders in real time: the run is still busy when killed
    assert run.proc is not None
    run.wait_for("planned:", timeout=RUN_TIMEOUT_S)
    servers = [
        pid
        for pid in _processes_of(str(run.home))
        if b"uvicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert servers, "the run has its temporary Prefect server"
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait()
    assert _gone_within(str(run.home), 5.0) == []


def test_a_prefect_server_that_cannot_start_is_one_line_and_exit_1(
    make_run: Callable[[Path | None], Run],
) -> None:
    run = make_run(None)
    # A database the server cannot create: it exits while starting.
    run.start(PREFECT_SERVER_DATABASE_CONNECTION_URL="sqlite+aiosqlite:////proc/no/prefect.db")
    assert run.proc is not None
    assert run.proc.wait(timeout=RUN_TIMEOUT_S) == 1, run.output()
    output = run.output()
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert "local Prefect server exited" in errors[0]
    assert "unable to open database file" in errors[0], errors[0]  # the server's own reason
    assert "PREFECT_API_URL" in errors[0], errors[0]
    assert not list(run.out.glob("*/*/*.mp4")), "nothing is rendered without Prefect"
    assert _gone_within(str(run.home), 2.0) == []
