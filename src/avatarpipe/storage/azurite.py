"""Azurite, the local Blob Storage emulator: how to start it and how to reach it.

Used by ``make up`` (``avatarpipe.cli.stack``), the test fixture and the benchmarks. Azurite
from npm rejects the API version that current azure-storage-blob sends, so it always runs with
``--skipApiVersionCheck`` (and ``--disableTelemetry``: there is no internet here).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ACCOUNT", "ACCOUNT_KEY", "BINARY", "account_url", "command", "connection_string"]

ACCOUNT = "devstoreaccount1"
# Azurite's documented development key: public, the same on every machine.
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
BINARY = (
    Path(__file__).resolve().parents[3]
    / ".tools"
    / "azurite"
    / "node_modules"
    / ".bin"
    / ("azurite-blob")
)
"""Where ``make azurite`` installs it (a development checkout only)."""


def command(port: int, *, location: Path | None = None, binary: Path = BINARY) -> list[str]:
    """The argv that starts Azurite's blob service on ``127.0.0.1:port``.

    Args:
        port: The blob port.
        location: Keep data there; ``None`` keeps it in memory (run it with a scratch cwd).
        binary: The ``azurite-blob`` executable.

    Returns:
        The command line, for ``subprocess`` (never a shell string).
    """
    where = ["--location", str(location)] if location else ["--inMemoryPersistence"]
    return [
        str(binary),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        *where,
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--loose",
    ]


def account_url(port: int) -> str:
    """The blob endpoint of the development account on ``port``."""
    return f"http://127.0.0.1:{port}/{ACCOUNT}"


def connection_string(port: int) -> str:
    """A connection string for the development account on ``port``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={account_url(port)};"
    )
