"""Fixtures for stack tests: an emulator on a free port (placeholder renderer, no delays)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flow_emu import SMALL, Emu

from avatarpipe.emulator.config import EmulatorConfig
from avatarpipe.emulator.placeholder import PlaceholderRenderer
from avatarpipe.emulator.server import EmulatorServer


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emu]:
    config = EmulatorConfig(
        port=0, state_dir=tmp_path / "emu", time_scale=0.0, renderer="placeholder"
    )
    server = EmulatorServer(config, PlaceholderRenderer(SMALL)).start()
    emulator = Emu(server)
    try:
        yield emulator
    finally:
        emulator.close()
