"""The run folder: ``outputs/<script-slug>/<run-id>/``, written atomically.

A run's files are written into a hidden staging folder beside the final one
(``outputs/<slug>/.<run-id>.partial/``) and the folder is renamed into place only when every
file is complete and the manifest is written; nothing half-written ever carries a final name.

Each run owns its staging folder: it holds an exclusive ``flock`` on the folder's ``.owner`` file
(which also records its pid, host and start time) for as long as the folder is staged. A crash
leaves at most a ``.partial`` folder whose lock nobody holds (the kernel drops it with the
process, even after ``kill -9``); the next run of a script with the same slug removes such
abandoned folders, and never one whose owner is alive: two runs of one script (or of titles
that slug to the same name) at once each keep their own folder. A folder owned on another host
(an output root shared over the network) is left alone for a day.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from avatarpipe.errors import ConfigError, StorageError, redact

__all__ = [
    "OWNER_FILE",
    "STAGING_GLOB",
    "RunDirectory",
    "abandoned",
    "check_output_root",
    "check_room",
    "new_run_id",
    "write_json_atomic",
]

STAGING_GLOB = ".*.partial"
"""The staging folders of a slug's folder (``.<run-id>.partial``), as a glob pattern."""

OWNER_FILE = ".owner"
"""The file in a staging folder whose ``flock`` its run holds (pid, host, start time inside)."""

_FOREIGN_STALE_S = 24 * 3600.0  # a folder owned on another host is abandoned after a day
_UNOWNED_STALE_S = 600.0  # a folder without an owner file (a crash while creating it)

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


def check_room(root: Path, need_bytes: int) -> None:
    """Make sure the output root's file system has room for a run, before anything is paid for.

    Args:
        root: The output root (an existing folder).
        need_bytes: A rough estimate of what the run writes.

    Raises:
        ConfigError: Less free space than ``need_bytes`` (one line: where, free and needed).
    """
    try:
        free = shutil.disk_usage(root).free
    except OSError as exc:
        raise ConfigError(f"AVATARPIPE_OUTPUT_DIR (or --out): {root}: {exc.strerror}") from None
    if free < need_bytes:
        raise ConfigError(
            f"AVATARPIPE_OUTPUT_DIR (or --out): {root} has {free / 2**20:.0f} MB free but the run "
            f"needs about {need_bytes / 2**20:.0f} MB; free some space or choose another folder"
        )


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
            if abandoned(stale):
                shutil.rmtree(stale, ignore_errors=True)
        try:
            self.staging.mkdir(parents=True, exist_ok=False)
            self._owner: int | None = _own(self.staging)
        except OSError as exc:
            shutil.rmtree(self.staging, ignore_errors=True)
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
        with contextlib.suppress(FileNotFoundError):
            (self.staging / OWNER_FILE).unlink()  # still locked through the open descriptor
        try:
            os.replace(self.staging, self.final)
        except OSError as exc:
            raise StorageError(f"cannot publish {self.final}: {exc}") from exc
        self._release()
        return self.final

    def abandon(self) -> None:
        """Remove the staging folder after a failure."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._owner is not None:
            os.close(self._owner)
            self._owner = None


def _own(folder: Path) -> int:
    """Lock a new staging folder's owner file for the life of the run; return its descriptor.

    Raises:
        OSError: The owner file could not be written or locked.
    """
    fd = os.open(folder / OWNER_FILE, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.write(fd, json.dumps(owner).encode())
    except OSError:
        os.close(fd)
        raise
    return fd


def abandoned(staging: Path) -> bool:
    """Whether a staging folder's run is gone (its owner lock is free), so it may be removed.

    Args:
        staging: A ``.<run-id>.partial`` folder.

    Returns:
        ``True`` when no live run owns it.
    """
    owner = staging / OWNER_FILE
    try:
        fd = os.open(owner, os.O_RDONLY)
    except FileNotFoundError:
        try:
            return time.time() - staging.stat().st_mtime > _UNOWNED_STALE_S
        except OSError:
            return False
    except OSError:
        return False
    try:
        try:
            host = json.loads(os.read(fd, 4096) or b"{}").get("host")
        except ValueError:
            host = None
        if host and host != socket.gethostname():
            return time.time() - owner.stat().st_mtime > _FOREIGN_STALE_S
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its run is alive
        except OSError:
            return False
        return True
    finally:
        os.close(fd)
