"""Shared pieces of the reliability tests: child flow runs, a request log, cache checks.

* ``flow_child`` starts ``tests/helpers/crash_runner.py`` (the ``synthesize`` flow) in a child
  process against an emulator of the test process and the session's Prefect API; every child
  still alive at teardown is killed.
* :func:`log_requests` records the time of every Azure API request an in-process emulator
  answers (for "at most N per minute" checks).
* :func:`check_cache` asserts that a download cache holds only verified files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flow_emu import Emu

from avatarpipe.media.ffmpeg import probe

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "tests" / "helpers" / "crash_runner.py"


def wait_until(
    predicate: Callable[[], bool], timeout_s: float, what: str, step: float = 0.05
) -> None:
    """Poll ``predicate`` until it holds; fail the test with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(step)


@dataclass
class ChildRun:
    """One ``synthesize`` flow run in a child process."""

    proc: subprocess.Popen[bytes]
    progress: Path
    result: Path
    stderr: Path

    def events(self) -> list[dict[str, Any]]:
        """The progress events written so far (a torn last line is ignored)."""
        if not self.progress.is_file():
            return []
        out = []
        for line in self.progress.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def count(self, stage: str) -> int:
        """How many events of ``stage`` the child reported."""
        return sum(1 for e in self.events() if e.get("stage") == stage)

    def kill(self) -> None:
        """SIGKILL the child (no cleanup of any kind runs in it) and reap it."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def finish(self, timeout_s: float = 180.0) -> dict[str, Any]:
        """Wait for the child to exit 0 and return its outcome (``SynthesisOutcome`` as JSON)."""
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the flow run did not finish in {timeout_s:.0f} s:\n{self.tail()}")
        assert code == 0, f"the flow run failed (exit {code}):\n{self.tail()}"
        data: dict[str, Any] = json.loads(self.result.read_text())
        return data

    def tail(self, chars: int = 3000) -> str:
        """The end of the child's stderr."""
        text = self.stderr.read_text(errors="replace") if self.stderr.is_file() else ""
        return text[-chars:]


ChildFactory = Callable[..., ChildRun]


@pytest.fixture
def prefect_api_url(prefect_harness: None) -> str:
    """The session Prefect API's URL (children use the same server)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the Prefect test harness sets PREFECT_API_URL"
    return str(url)


@pytest.fixture
def flow_child(prefect_api_url: str, tmp_path: Path) -> Iterator[ChildFactory]:
    """Start ``synthesize`` flow runs in child processes (killed at teardown if still alive)."""
    children: list[ChildRun] = []

    def start(emu: Emu, cache: Path, label: str, scenes: int, **options: Any) -> ChildRun:
        n = len(children)
        progress_file = tmp_path / f"child{n}.progress.jsonl"
        result_file = tmp_path / f"child{n}.result.json"
        stderr_file = tmp_path / f"child{n}.stderr.txt"
        args = [
            sys.executable,
            str(RUNNER),
            "--endpoint",
            emu.url,
            "--cache",
            str(cache),
            "--label",
            label,
            "--scenes",
            str(scenes),
            "--progress",
            str(progress_file),
            "--result",
            str(result_file),
        ]
        for name, value in options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        env = {**os.environ, "PREFECT_API_URL": prefect_api_url, "PREFECT_LOGGING_LEVEL": "WARNING"}
        with stderr_file.open("wb") as err:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err
            )
        run = ChildRun(proc, progress_file, result_file, stderr_file)
        children.append(run)
        return run

    yield start
    for run in children:
        if run.proc.poll() is None:
            run.kill()


@dataclass
class RequestLog:
    """Times (``time.monotonic()``) of the Azure API requests an emulator answered."""

    entries: list[tuple[float, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def times(self) -> list[float]:
        """Request times, sorted."""
        with self.lock:
            return sorted(t for t, _route, _status in self.entries)

    def max_in_window(self, window_s: float = 60.0) -> int:
        """The largest number of requests inside any window of ``window_s`` seconds."""
        times = self.times()
        best = start = 0
        for end, t in enumerate(times):
            while t - times[start] >= window_s:
                start += 1
            best = max(best, end - start + 1)
        return best


def log_requests(emu: Emu) -> RequestLog:
    """Record every Azure API request (``/avatar/...``, ``/customvoice/...``) ``emu`` answers.

    The emulator counts each answered request per route; this wraps that counter of the
    in-process emulator to keep the time as well. Result downloads are storage, not API calls.
    """
    app = emu.server.app
    assert app is not None
    store = app.resource.store
    counted = store.count_request
    log = RequestLog()

    def count_request(route_key: str, status: str) -> None:
        path = route_key.split(" ", 1)[-1]
        if path.startswith(("/avatar", "/customvoice")):
            with log.lock:
                log.entries.append((time.monotonic(), route_key, status))
        counted(route_key, status)

    store.count_request = count_request  # type: ignore[method-assign,assignment]
    return log


def check_cache(cache: Path) -> dict[str, dict[str, Any]]:
    """Assert that the download cache holds only complete, verified files; return the markers.

    Every video has a ``.verified.json`` marker whose size and SHA-256 match the file and
    ffmpeg reads it; the only other files are ``summary.json`` (valid JSON), markers and the
    result store's records and locks.
    Nothing temporary (``.part``, ``.tmp``) is left anywhere.

    Returns:
        Marker data by video path (relative to ``cache``).
    """
    import hashlib

    markers: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in cache.rglob("*") if p.is_file()):
        rel = str(path.relative_to(cache))
        name = path.name
        if name.endswith(".verified.json"):
            video = path.with_name(name.removesuffix(".verified.json"))
            assert video.is_file(), f"{rel}: a marker without its video"
            continue
        if name == "summary.json":
            json.loads(path.read_text())
            continue
        if name == "job.json" or path.parent.name in (".work", ".locks"):
            continue  # the result store's records (batch/store.py) and lock files
        assert path.suffix == ".mp4" and name[:4].isdigit(), f"unexpected file in the cache: {rel}"
        marker = path.with_name(name + ".verified.json")
        assert marker.is_file(), f"{rel} carries a final name but was never verified"
        data = json.loads(marker.read_text())
        assert data["size_bytes"] == path.stat().st_size, f"{rel}: size differs from its marker"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert data["sha256"] == digest, f"{rel}: checksum differs from its marker"
        info = probe(path)
        assert info.video is not None and info.duration_s > 0, f"{rel}: not a readable video"
        markers[rel] = data
    return markers


# Test modules cannot import this conftest (``--import-mode=importlib``): the helpers above
# reach them as fixtures.


@pytest.fixture(name="check_cache")
def check_cache_fixture() -> Callable[[Path], dict[str, dict[str, Any]]]:
    """:func:`check_cache`."""
    return check_cache


@pytest.fixture(name="log_requests")
def log_requests_fixture() -> Callable[[Emu], RequestLog]:
    """:func:`log_requests`."""
    return log_requests


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., None]:
    """:func:`wait_until`."""
    return wait_until
