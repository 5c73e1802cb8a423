"""A local PostgreSQL cluster: the Prefect server's database in the scale-out stack.

The server binaries come from the OS package (``make postgres`` installs Debian's
``postgresql`` when they are missing); this module finds them, creates a cluster in a folder
(``initdb``, once) and gives the command line that runs it on a loopback port, without a Unix
socket and with ``trust`` authentication for local connections only: no password exists, so
none can leak into logs or the Prefect database URL.

PostgreSQL refuses to run as root. When this process is root, the cluster belongs to the
``postgres`` system user (created by the package) and every PostgreSQL process runs as that
user; its data folder must then be reachable by that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avatarpipe.errors import ConfigError, StorageError
from avatarpipe.processes import child_process_kwargs

__all__ = ["Cluster", "find_bindir"]

SYSTEM_USER = "postgres"
DATABASE = "prefect"
_INSTALL_HINT = "run `make postgres` (installs the OS package `postgresql`)"


def find_bindir() -> Path:
    """The folder holding ``initdb`` and ``postgres`` (PATH first, then Debian's layout).

    Raises:
        ConfigError: PostgreSQL's server is not installed.
    """
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "postgres").exists():
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    raise ConfigError(f"PostgreSQL's server (initdb, postgres) is not installed: {_INSTALL_HINT}")


def _run_as() -> dict[str, Any]:
    """``subprocess`` keywords that drop root to the ``postgres`` user (nothing otherwise).

    Raises:
        ConfigError: Running as root and the ``postgres`` user does not exist.
    """
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise ConfigError(
            f"running as root and there is no {SYSTEM_USER!r} user to run PostgreSQL as: "
            f"{_INSTALL_HINT}"
        ) from None
    return {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}


@dataclass(frozen=True)
class Cluster:
    """A PostgreSQL cluster in ``data_dir``, served on ``127.0.0.1:port``.

    Attributes:
        data_dir: The cluster's folder (created by :meth:`init`).
        port: The TCP port it listens on (loopback only).
    """

    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the Prefect database (``asyncpg`` driver, no password)."""
        return f"postgresql+asyncpg://{SYSTEM_USER}@127.0.0.1:{self.port}/{DATABASE}"

    def init(self) -> bool:
        """Create the cluster unless it exists.

        Returns:
            Whether a new cluster was created.

        Raises:
            ConfigError: PostgreSQL is missing, or the folder is not usable by its user.
            StorageError: ``initdb`` failed (its output is in the message).
        """
        bindir = find_bindir()
        as_user = _run_as()
        if (self.data_dir / "PG_VERSION").is_file():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if as_user:
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            if not _reachable_by(self.data_dir, entry.pw_uid, entry.pw_gid):
                raise ConfigError(
                    f"PostgreSQL runs as the {SYSTEM_USER!r} user, who cannot reach "
                    f"{self.data_dir}: choose a data folder outside private folders "
                    "(every parent folder needs o+x)"
                )
        done = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SYSTEM_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],  # fmt: skip
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            **as_user,
            **child_process_kwargs(),
        )
        if done.returncode != 0:
            raise StorageError(
                f"initdb {self.data_dir} failed: {(done.stderr or done.stdout).strip()[-800:]}"
            )
        return True

    def command(self) -> list[str]:
        """The argv that runs the cluster in the foreground (loopback TCP only).

        Raises:
            ConfigError: PostgreSQL is not installed.
        """
        return [
            str(find_bindir() / "postgres"), "-D", str(self.data_dir),
            "-p", str(self.port), "-h", "127.0.0.1", "-k", "",
            # A local stack: fast commits (a crash may lose the last few, never corrupts).
            "-c", "synchronous_commit=off", "-c", "max_connections=200",
        ]  # fmt: skip

    def popen_kwargs(self) -> dict[str, Any]:
        """Extra ``subprocess.Popen`` keywords for :meth:`command` (the user to run as).

        Raises:
            ConfigError: Running as root without a ``postgres`` user.
        """
        return _run_as()

    def create_database(self) -> None:
        """Create the Prefect database unless it exists.

        Raises:
            StorageError: The server refused (its message is in the error).
        """
        import asyncio

        import asyncpg  # type: ignore[import-untyped]

        async def create() -> None:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user=SYSTEM_USER, database="postgres"
            )
            try:
                exists = await conn.fetchval(
                    "SELECT 1 FROM pg_database WHERE datname = $1", DATABASE
                )
                if not exists:
                    await conn.execute(f'CREATE DATABASE "{DATABASE}"')
            finally:
                await conn.close()

        try:
            asyncio.run(create())
        except (OSError, asyncpg.PostgresError) as exc:
            raise StorageError(f"PostgreSQL on port {self.port}: {exc}") from None

    def ready(self) -> bool:
        """Whether the server accepts connections."""
        import asyncio

        import asyncpg

        async def ping() -> None:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user=SYSTEM_USER, database="postgres", timeout=2
            )
            await conn.close()

        try:
            asyncio.run(ping())
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        return True


def _reachable_by(folder: Path, uid: int, gid: int) -> bool:
    """Whether a user can traverse every parent of ``folder`` (owner, group or other ``x``)."""
    for parent in folder.resolve().parents:
        st = parent.stat()
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid == gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True
