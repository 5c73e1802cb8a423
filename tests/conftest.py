"""Session-wide fixtures: an isolated Prefect home and one Prefect test harness per session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefect reads its settings when it is imported: isolate it before anything imports it.
_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="avatarpipe-prefect-home-"))
os.environ.setdefault("PREFECT_HOME", str(_PREFECT_HOME))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")
# Tests never read a developer's .env for avatarpipe settings.
for _name in list(os.environ):
    if _name.startswith("AVATARPIPE_"):
        del os.environ[_name]

pytest_plugins = ["azurite_fixture", "emu_fixtures"]


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One real Prefect API (SQLite, subprocess) for the whole session."""
    from prefect.settings import PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        temporary_settings(updates={PREFECT_HOME: str(_PREFECT_HOME)}),
        prefect_test_harness(server_startup_timeout=120),
    ):
        yield
