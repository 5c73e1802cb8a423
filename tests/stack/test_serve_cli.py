"""`avatarpipe serve` refuses clearly when it cannot serve (no Prefect server, no endpoint)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AVATARPIPE_", "PREFECT_"))}
    base.update({"PREFECT_HOME": str(tmp_path / "home"), "COLUMNS": "200", **env})
    return subprocess.run(
        [sys.executable, "-m", "avatarpipe.cli.serve", *args],
        cwd=tmp_path,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_serve_without_prefect_api_url_says_what_to_do(tmp_path: Path) -> None:
    done = _serve(tmp_path, AVATARPIPE_SPEECH_ENDPOINT="http://127.0.0.1:9")
    assert done.returncode == 2, done.stderr
    assert "PREFECT_API_URL is not set" in done.stderr
    assert "make up" in done.stderr


def test_serve_without_a_speech_endpoint_says_what_to_do(tmp_path: Path) -> None:
    done = _serve(tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api")
    assert done.returncode == 2, done.stderr
    assert "AVATARPIPE_SPEECH_ENDPOINT is not set" in done.stderr


def test_serve_with_a_bad_cron_names_the_option(tmp_path: Path) -> None:
    done = _serve(
        tmp_path,
        "--cron",
        "every night",
        PREFECT_API_URL="http://127.0.0.1:9/api",
        AVATARPIPE_SPEECH_ENDPOINT="http://127.0.0.1:9",
    )
    assert done.returncode == 2, done.stderr
    assert "--cron" in done.stderr
