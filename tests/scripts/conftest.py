from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

BASE: dict[str, Any] = {
    "title": "Test script",
    "avatar": {"character": "lisa", "style": "casual-sitting"},
    "voice": {"name": "en-US-AvaMultilingualNeural"},
    "scenes": [{"text": "Scene one."}, {"text": "Scene two."}],
}


@pytest.fixture
def base() -> dict[str, Any]:
    """A fresh copy of a small valid script."""
    return copy.deepcopy(BASE)


@pytest.fixture
def write_script(tmp_path: Path) -> Callable[[dict[str, Any] | str, str], Path]:
    """Write a script (a dict dumped as YAML, or raw text) into tmp_path and return its path."""

    def write(data: dict[str, Any] | str, name: str = "talk.yaml") -> Path:
        path = tmp_path / name
        text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write
