"""Ctrl-C, SIGTERM and SIGKILL of a real ``avatarpipe run`` while its jobs render.

Each test starts the CLI as a child process (its own session, SIGINT at its default), on a
pseudo-terminal (the live display; Ctrl-C is a ``\\x03`` written to the terminal, which the tty
driver turns into SIGINT for the foreground process group) or on pipes (the signal is sent to
it). While the child runs, a sampler records every process descending from it (ffmpeg renders,
...). The checks: the exit code, the time from the signal to the exit, the one line naming the
jobs in flight, no traceback, no process of the run alive 2 s later, and a rerun that completes
without creating a job (the standalone emulator's counters) and, with the embedded emulator,
without a failed job.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flow_emu import Emu

from avatarpipe.emulator.store import Store

REPO = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("avatarpipe")
LESSON = REPO / "templates" / "scripts" / "training-lesson.yaml"  # 5 scenes, standard avatar
DEMO = REPO / "templates" / "scripts" / "product-update.yaml"  # custom avatar and voice
STOP_S = 3.0  # the documented contract (issue 15)


# ------------------------------------------------------------------ processes


def _stat(pid: int) -> tuple[int, int, int] | None:
    """``(ppid, session id, start time)`` of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie is gone, only not reaped yet
        return None
    return int(fields[1]), int(fields[3]), int(fields[19])


def _table() -> dict[int, tuple[int, int, int]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            out[int(entry)] = st
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
    except OSError:
        return "?"


@dataclass
class CliRun:
    """One ``avatarpipe run`` child and what was seen of it."""

    proc: subprocess.Popen[bytes]
    master: int | None
    output: bytearray = field(default_factory=bytearray)
    seen: dict[int, tuple[int, str]] = field(default_factory=dict)  # pid -> (start, cmdline)
    signalled_at: float = 0.0
    _done: threading.Event = field(default_factory=threading.Event)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def descendants(self) -> dict[int, str]:
        """Live processes descending from the child now (ffmpeg, servers)."""
        table = _table()
        found: set[int] = {self.proc.pid}
        grew = True
        while grew:
            grew = False
            for pid, (ppid, _sid, _start) in table.items():
                if ppid in found and pid not in found:
                    found.add(pid)
                    grew = True
        found.discard(self.proc.pid)
        return {pid: _cmdline(pid) for pid in found}

    def record(self) -> dict[int, str]:
        """Note the child's live descendants in ``seen``, and return them."""
        now = self.descendants()
        for pid, cmd in now.items():
            st = _stat(pid)
            if st is not None:
                self.seen.setdefault(pid, (st[2], cmd))
        return now

    def sample(self) -> None:
        """Record the child's descendants every 0.1 s until it exits."""
        while self.proc.poll() is None:
            self.record()
            time.sleep(0.1)

    def survivors(self) -> list[str]:
        """Processes of the run still alive: every descendant seen, and its session's members."""
        alive = [
            f"{pid} {cmd}"
            for pid, (start, cmd) in self.seen.items()
            if (st := _stat(pid)) is not None and st[2] == start
        ]
        alive += [
            f"{pid} {_cmdline(pid)}"
            for pid, (_ppid, sid, _start) in _table().items()
            if sid == self.proc.pid and pid not in self.seen
        ]
        return alive

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` (SIGINT on a terminal: type Ctrl-C) and note the time."""
        self.signalled_at = time.monotonic()
        if sig == signal.SIGINT and self.master is not None:
            os.write(self.master, b"\x03")
        else:
            self.proc.send_signal(sig)

    def wait(self, timeout_s: float) -> tuple[int, float]:
        """Exit code and seconds from the signal to the exit."""
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the run did not exit within {timeout_s} s:\n{self.text[-3000:]}")
        elapsed = time.monotonic() - self.signalled_at
        self._done.wait(5)
        return code, elapsed


def _reader(run: CliRun, stream: int) -> None:
    while True:
        try:
            data = os.read(stream, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not data:
            break
        run.output.extend(data)
    run._done.set()


def _restore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _take_terminal() -> None:
    _restore_sigint()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes this session's terminal


@pytest.fixture
def cli(tmp_path: Path, prefect_api_url: str) -> Iterator[Callable[..., CliRun]]:
    """Start ``avatarpipe run`` children (``tty=True``: on a pseudo-terminal); kill leftovers."""
    runs: list[CliRun] = []

    def start(
        script: Path, out: Path, env: dict[str, str], *, tty: bool, own_prefect: bool = False
    ) -> CliRun:
        """``own_prefect``: no PREFECT_API_URL, so the CLI starts its temporary Prefect server."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AVATARPIPE_")}
        inherited.pop("PREFECT_API_URL", None)
        full = {
            **inherited,
            **({} if own_prefect else {"PREFECT_API_URL": prefect_api_url}),
            "COLUMNS": "160",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        args = [str(CLI), "run", str(script), "--out", str(out), "--no-post"]
        master = None
        if tty:
            master, slave = os.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
            proc = subprocess.Popen(
                args,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env={**full, "TERM": "xterm-256color"},
                start_new_session=True,
                preexec_fn=_take_terminal,
            )
            os.close(slave)
            stream = master
        else:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=full,
                start_new_session=True,
                preexec_fn=_restore_sigint,
            )
            assert proc.stdout is not None
            stream = proc.stdout.fileno()
        run = CliRun(proc, master)
        threading.Thread(target=_reader, args=(run, stream), daemon=True).start()
        threading.Thread(target=run.sample, daemon=True).start()
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
        for pid in run.seen:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if run.master is not None:
            os.close(run.master)


def _until(predicate: Callable[[], bool], timeout_s: float, what: str, run: CliRun) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if run.proc.poll() is not None:
            pytest.fail(
                f"the run exited ({run.proc.returncode}) before {what}:\n{run.text[-3000:]}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{run.text[-3000:]}")
        time.sleep(0.1)


def _assert_stopped(run: CliRun, code: int, elapsed: float, want: int) -> None:
    """What every interrupted run must show; the one line is returned for more checks."""
    print(f"stopped in {elapsed:.2f} s with exit {code}")  # the measured figure, with -s
    assert code == want, run.text[-3000:]
    assert elapsed <= STOP_S, f"took {elapsed:.2f} s to stop:\n{run.text[-3000:]}"
    assert "Traceback" not in run.text, run.text[-3000:]
    time.sleep(2.0)
    assert run.survivors() == [], "processes of the run outlived it"


def _interrupted_line(run: CliRun) -> str:
    lines = [ln for ln in re.split(r"[\r\n]+", run.text) if "interrupted:" in ln]
    assert len(lines) == 1, run.text[-3000:]
    return lines[0][lines[0].index("interrupted:") :].strip()


# ------------------------------------------------------------------ standalone emulator


def _slow_emu(make_emu: Callable[..., Emu]) -> Emu:
    """Jobs start at once and then stay ``Running`` (modelled render: 1000 s per video s)."""
    emu = make_emu()
    emu.configure(time_scale=1.0, queue_delay_s=0.0, render_s_per_video_s=1000.0)
    return emu


def _emu_env(emu: Emu) -> dict[str, str]:
    return {"AVATARPIPE_SPEECH_ENDPOINT": emu.url, "AVATARPIPE_BACKEND": "emulator"}


def _running(emu: Emu) -> int:
    return int(emu.stats()["jobs_by_status"].get("Running", 0))


@pytest.mark.parametrize(
    ("tty", "sig"),
    [(True, signal.SIGINT), (False, signal.SIGINT), (False, signal.SIGTERM)],
    ids=["ctrl-c-on-a-terminal", "sigint-without-a-terminal", "sigterm"],
)
def test_a_signal_stops_the_run_and_the_rerun_picks_the_jobs_up(
    make_emu: Callable[..., Emu],
    cli: Callable[..., CliRun],
    tmp_path: Path,
    tty: bool,
    sig: signal.Signals,
) -> None:
    emu = _slow_emu(make_emu)
    out = tmp_path / "out"
    run = cli(LESSON, out, _emu_env(emu), tty=tty)
    _until(lambda: _running(emu) == 5, 180, "the 5 jobs to render", run)
    time.sleep(1.0)  # the run is polling
    created = emu.stats()["jobs_created"]
    job_ids = set(emu.stats()["puts_by_job_id"])

    run.signal(sig)
    code, elapsed = run.wait(30)

    _assert_stopped(run, code, elapsed, 128 + sig)
    line = _interrupted_line(run)
    assert line.startswith("interrupted: 5 jobs still rendering on the service ("), line
    assert line.endswith("rerun the same command to pick them up"), line
    assert set(re.findall(r"ap-[\w.-]+?(?=[,)])", line)) <= job_ids
    assert len(re.findall(r"ap-[\w.-]+?(?=[,)])", line)) == 5, line
    assert _running(emu) == 5, "the jobs were left running on the service"
    assert not list(out.glob("*/.*.partial")), "a staging folder was left"
    if tty:
        assert "submitted" in run.text, "the live display was on"

    emu.configure(time_scale=0.0)  # the service finishes the jobs
    again = cli(LESSON, out, _emu_env(emu), tty=False)
    assert again.wait(180)[0] == 0, again.text[-3000:]
    stats = emu.stats()
    assert stats["jobs_created"] == created, "the rerun created a job"
    assert set(stats["puts_by_job_id"]) == job_ids
    assert "video: " in again.text


def test_a_second_ctrl_c_stops_at_once(
    make_emu: Callable[..., Emu], cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    emu = _slow_emu(make_emu)
    run = cli(LESSON, tmp_path / "out", _emu_env(emu), tty=True)
    _until(lambda: _running(emu) == 5, 180, "the 5 jobs to render", run)
    run.signal(signal.SIGINT)
    time.sleep(0.05)
    run.signal(signal.SIGINT)
    code, elapsed = run.wait(30)
    _assert_stopped(run, code, elapsed, 130)
    assert elapsed <= 1.0, f"a second Ctrl-C took {elapsed:.2f} s"
    _interrupted_line(run)


# ------------------------------------------------------------------ embedded emulator


def _embedded_env(state: Path) -> dict[str, str]:
    # Real renders (ffmpeg) at the modelled speed of 1/50: renders are in progress for seconds.
    return {"AVATARPIPE_EMULATOR_STATE": str(state), "AVATARPIPE_EMULATOR_TIME_SCALE": "0.02"}


def _ffmpeg_running(run: CliRun) -> bool:
    return any("ffmpeg" in cmd for cmd in run.record().values())


def _job_statuses(state: Path) -> dict[str, int]:
    store = Store(state / "emulator.sqlite3")
    try:
        statuses: dict[str, int] = store.stats()["jobs_by_status"]
        return statuses
    finally:
        store.close()


@pytest.mark.parametrize("tty", [True, False], ids=["on-a-terminal", "without-a-terminal"])
def test_ctrl_c_on_the_embedded_emulator_fails_no_job(
    cli: Callable[..., CliRun], tmp_path: Path, tty: bool
) -> None:
    state, out = tmp_path / "emulator", tmp_path / "out"
    run = cli(DEMO, out, _embedded_env(state), tty=tty)
    _until(lambda: _ffmpeg_running(run), 240, "a render (ffmpeg) to run", run)

    run.signal(signal.SIGINT)
    code, elapsed = run.wait(30)

    _assert_stopped(run, code, elapsed, 130)
    assert _interrupted_line(run).startswith("interrupted: "), run.text
    assert "Failed" not in _job_statuses(state), "an interrupted render failed its job"

    again = cli(DEMO, out, _embedded_env(state), tty=False)
    assert again.wait(300)[0] == 0, again.text[-3000:]
    statuses = _job_statuses(state)
    assert set(statuses) == {"Succeeded"}, statuses


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_killed_run_leaves_no_process(
    cli: Callable[..., CliRun], tmp_path: Path, sig: signal.Signals
) -> None:
    state = tmp_path / "emulator"
    run = cli(DEMO, tmp_path / "out", _embedded_env(state), tty=False, own_prefect=True)
    _until(lambda: _ffmpeg_running(run), 240, "a render (ffmpeg) to run", run)
    commands = [cmd for _start, cmd in run.seen.values()]
    assert any("ffmpeg" in cmd for cmd in commands)
    assert any("prefect" in cmd for cmd in commands), "the run's own Prefect server is covered"

    run.signal(sig)
    code, elapsed = run.wait(30)
    print(f"exit {code} after {elapsed:.2f} s")
    assert code == (143 if sig == signal.SIGTERM else -signal.SIGKILL), run.text[-3000:]
    deadline = time.monotonic() + 5.0
    while run.survivors() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.survivors() == [], "processes of the run outlived it by 5 s"
    assert "Failed" not in _job_statuses(state), "a killed run failed a job"
