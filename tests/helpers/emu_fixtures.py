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
