"""Driving a scale-out stack over the Prefect REST API (shared by tests/scale and benchmarks/scale.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from avatarpipe.cli.stack import Stack, StackConfig

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

SCRIPT = """title: {title}
avatar: {{character: lisa, style: casual-sitting}}
voice: {{name: en-US-AvaMultilingualNeural}}
video: {{format: mp4, codec: h264, subtitles: external_file}}
scenes:
{scenes}
post: {{preset: web-720p, overrides: {{width: 320, height: 180, speed: ultrafast, contact_sheet: false}}}}
"""


def script_text(title: str, scenes: int) -> str:
    lines = "\n".join(f"  - text: {title}, part {i + 1}." for i in range(scenes))
    return SCRIPT.format(title=title, scenes=lines)


def write_scripts(folder: Path, count: int, prefix: str = "s") -> list[Path]:
    """``count`` scripts of 2 to 4 short scenes (slugs ``<prefix>-NN-news``)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}{i:02d}.yaml"
        path.write_text(script_text(f"{prefix.upper()} {i:02d} news", 2 + i % 3), encoding="utf-8")
        paths.append(path)
    return paths


@contextmanager
def scale_stack(root: Path, workers: int, requests_per_minute: float) -> Iterator[Stack]:
    """A scale-out stack (PostgreSQL, Prefect server, pool, ``workers`` workers), stopped after.

    PostgreSQL runs as the ``postgres`` user when this is root, so its data folder is a private
    temporary folder that user can reach (pytest's own temporary root is not).
    """
    pg_root = Path(tempfile.mkdtemp(prefix="avatarpipe-pg-"))
    pg_root.chmod(0o711)
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AVATARPIPE_")}
    config = StackConfig(
        state_dir=root / "stack",
        ui_port=0,
        emulator_port=0,
        azurite_port=0,
        renderer="placeholder",
        time_scale=0.0,
        workers=workers,
        postgres=True,
        postgres_data=pg_root / "data",
        worker_limit=4,
        worker_poll_s=1.0,
        crash_after_s=60,
        requests_per_minute=requests_per_minute,
        timeout_s=240.0,
    )
    stack = Stack(config)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        os.environ.update(saved)
        shutil.rmtree(pg_root, ignore_errors=True)


def deployment_id(api: str, name: str) -> str:
    deps = httpx.post(f"{api}/deployments/filter", json={}, timeout=30).json()
    return next(d["id"] for d in deps if d["name"] == name)


def submit(api: str, deployment: str, parameters: dict[str, Any], queue: str | None = None) -> str:
    """Create one flow run of ``deployment`` (``adhoc`` or ``nightly``); its id."""
    body: dict[str, Any] = {"parameters": parameters}
    if queue is not None:
        body["work_queue_name"] = queue
    resp = httpx.post(
        f"{api}/deployments/{deployment_id(api, deployment)}/create_flow_run", json=body, timeout=60
    )
    assert resp.status_code == 201, f"create_flow_run: {resp.status_code} {resp.text[:500]}"
    return str(resp.json()["id"])


def flow_run(api: str, run_id: str) -> dict[str, Any]:
    return httpx.get(f"{api}/flow_runs/{run_id}", timeout=30).json()  # type: ignore[no-any-return]


def wait_final(
    api: str, run_ids: list[str], timeout_s: float, final: set[str] = FINAL
) -> dict[str, dict[str, Any]]:
    """Wait until every run is in one of the ``final`` states (or fail naming those that are not)."""
    deadline = time.monotonic() + timeout_s
    done: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(done) < len(run_ids):
        for run_id in run_ids:
            if run_id not in done:
                got = flow_run(api, run_id)
                if got["state"]["type"] in final:
                    done[run_id] = got
        time.sleep(1.0)
    missing = {r: flow_run(api, r)["state"]["name"] for r in run_ids if r not in done}
    assert not missing, f"runs not finished in {timeout_s:.0f} s: {missing}"
    return done


def published(out: Path) -> dict[str, list[Path]]:
    """Script slug -> its published run folders (with a manifest) under an output root."""
    found: dict[str, list[Path]] = {}
    for manifest in out.glob("*/*/manifest.json"):
        found.setdefault(manifest.parent.parent.name, []).append(manifest.parent)
    return found
