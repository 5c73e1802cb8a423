"""The run folder: ``outputs/<script-slug>/<run-id>/``, written atomically.

A run's files are written into a hidden staging folder beside the final one
(``outputs/<slug>/.<run-id>.partial/``) and the folder is renamed into place only when every
file is complete and the manifest is written. A crash leaves at most a ``.partial`` folder,
which the next run of the same script removes; nothing half-written ever carries a final name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from avatarpipe.errors import ConfigError, StorageError, redact

__all__ = ["STAGING_GLOB", "RunDirectory", "check_output_root", "new_run_id", "write_json_atomic"]

STAGING_GLOB = ".*.partial"
"""The staging folders of a slug's folder (``.<run-id>.partial``), as a glob pattern."""

_SAFE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[a-z0-9]{4,12}$")


def new_run_id(suffix: str, now: datetime | None = None) -> str:
    """A sortable run id: ``20261125-181500-1a2b3c4d``.

    Args:
        suffix: A short unique part (e.g. the start of the Prefect flow run id).
        now: The time to use (default: now, UTC).

    Returns:
        The run id.
    """
    when = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    tail = re.sub(r"[^a-z0-9]", "", suffix.lower())[:8] or "run"
    return f"{when}-{tail}"


def check_output_root(root: Path) -> None:
    """Make sure the output root is a folder this process can write, before anything is paid for.

    The folder is created when missing, and a temporary file is written into it and removed.

    Args:
        root: The output root (``AVATARPIPE_OUTPUT_DIR`` or ``--out``).

    Raises:
        ConfigError: ``root`` is a file, cannot be created, or is not writable (one line naming
            the setting and the path).
    """
    name = f"AVATARPIPE_OUTPUT_DIR (or --out): {root}"
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{name} is a file, not a folder; choose a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{name} cannot be created ({exc.strerror or exc})") from None
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".avatarpipe-write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{name} is not writable ({exc.strerror or exc})") from None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename it into place.

    Raises:
        StorageError: The file could not be written.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        text = json.dumps(data, indent=2, sort_keys=False, default=str)
        tmp.write_text(redact(text) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{path}: {exc}") from exc


class RunDirectory:
    """One run's output folder, staged then committed.

    Args:
        root: The output root (``outputs/``).
        slug: The script's slug (a safe directory name).
        run_id: The run id (see :func:`new_run_id`).

    Raises:
        StorageError: ``slug`` or ``run_id`` is not a safe name, or the folder cannot be made.
    """

    def __init__(self, root: Path, slug: str, run_id: str) -> None:
        if not _SAFE.match(slug):
            raise StorageError(f"output name {slug!r} is not a safe directory name")
        if not _RUN_ID.match(run_id):
            raise StorageError(f"run id {run_id!r} is not a safe directory name")
        self.slug = slug
        self.run_id = run_id
        self.final = root / slug / run_id
        self.staging = root / slug / f".{run_id}.partial"
        if self.final.exists():
            raise StorageError(f"{self.final} already exists: runs never overwrite each other")
        for stale in (root / slug).glob(STAGING_GLOB) if (root / slug).is_dir() else []:
            shutil.rmtree(stale, ignore_errors=True)
        try:
            self.staging.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise StorageError(f"{self.staging}: {exc}") from exc

    def path(self, name: str) -> Path:
        """Where a file named ``name`` is staged.

        Raises:
            StorageError: ``name`` would leave the folder.
        """
        candidate = (self.staging / name).resolve()
        if candidate.parent != self.staging.resolve():
            raise StorageError(f"file name {name!r} is not a plain file name")
        return candidate

    def commit(self, manifest: dict[str, Any]) -> Path:
        """Write ``manifest.json`` and rename the staging folder to its final name.

        Returns:
            The final folder.

        Raises:
            StorageError: The manifest or the rename failed (the staging folder is kept).
        """
        write_json_atomic(self.staging / "manifest.json", manifest)
        try:
            os.replace(self.staging, self.final)
        except OSError as exc:
            raise StorageError(f"cannot publish {self.final}: {exc}") from exc
        return self.final

    def abandon(self) -> None:
        """Remove the staging folder after a failure."""
        shutil.rmtree(self.staging, ignore_errors=True)
