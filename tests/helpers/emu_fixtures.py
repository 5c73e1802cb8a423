"""Pytest plugin: emulators on free ports for flow and CLI tests (fast placeholder renderer)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flow_emu import SMALL, Emu

from avatarpipe.emulator.config import EmulatorConfig
from avatarpipe.emulator.placeholder import PlaceholderRenderer
from avatarpipe.emulator.server import EmulatorServer

EmuFactory = Callable[..., Emu]


def start_server(
    state_dir: Path, renderer: Any = None, *, frame: tuple[int, int] = SMALL, **overrides: Any
) -> EmulatorServer:
    """Start an emulator on a free port: no modelled delays, the placeholder renderer at ``frame``."""
    config: dict[str, Any] = {
        "port": 0,
        "state_dir": state_dir,
        "time_scale": 0.0,
        "renderer": "placeholder",
        **overrides,
    }
    return EmulatorServer(EmulatorConfig(**config), renderer or PlaceholderRenderer(frame)).start()


@pytest.fixture
def make_emu(tmp_path: Path) -> Iterator[EmuFactory]:
    started: list[Emu] = []

    def make(state_dir: Path | None = None, renderer: Any = None, **overrides: Any) -> Emu:
        server = start_server(state_dir or tmp_path / f"emu{len(started)}", renderer, **overrides)
        emu = Emu(server)
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.close()


@pytest.fixture
def emu(make_emu: EmuFactory) -> Emu:
    return make_emu()


class ServedEmulator:
    """``avatarpipe emulator serve`` in its own process (a standalone emulator on a free port).

    Attributes:
        url: Its endpoint.
        key: The key it requires.
        admin: Its admin client (counters, state).
    """

    def __init__(self, state_dir: Path, key: str, resource: Path) -> None:
        import os
        import subprocess
        import sys

        from avatarpipe.speech.emulator_admin import EmulatorAdminClient

        self.key = key
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "avatarpipe"),
                "emulator",
                "serve",
                "--port",
                "0",
                "--state",
                str(state_dir),
                "--seed",
                str(resource),
                "--key",
                key,
                "--time-scale",
                "0",
                "--renderer",
                "placeholder",
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()  # "Speech emulator listening on http://...:PORT (...)"
        if "listening on " not in first:
            self.stop()
            raise RuntimeError(f"the emulator did not start: {first}")
        self.url = first.split("listening on ", 1)[1].split()[0]
        self.admin = EmulatorAdminClient(self.url, key=key)

    def stop(self) -> None:
        import os
        import signal
        import subprocess

        if getattr(self, "admin", None) is not None:
            self.admin.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def served_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEmulator]:
    """A standalone emulator process holding the default resource file, with a key."""
    from avatarpipe.cli.seed import DEFAULT_RESOURCE

    served = ServedEmulator(
        tmp_path_factory.mktemp("served-emulator"), "served-emulator-key-0123", DEFAULT_RESOURCE
    )
    yield served
    served.stop()
