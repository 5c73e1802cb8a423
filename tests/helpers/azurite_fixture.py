"""A session fixture that runs Azurite's blob service on a free loopback port.

Register with ``pytest_plugins = ["azurite_fixture"]`` (``tests/helpers`` is on the path). The
binary is ``.tools/azurite/node_modules/.bin/azurite-blob`` (installed by ``make``); when it is
missing but npm is present, it is installed there first. Tests skip only when node/npm are absent.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from avatarpipe.storage import azurite as dev

BINARY = dev.BINARY
TOOLS = BINARY.parents[2]
ACCOUNT_NAME = dev.ACCOUNT
ACCOUNT_KEY = dev.ACCOUNT_KEY


@dataclass(frozen=True)
class Azurite:
    """A running Azurite blob service."""

    host: str
    port: int
    account_name: str = ACCOUNT_NAME
    account_key: str = ACCOUNT_KEY

    @property
    def account_url(self) -> str:
        return f"http://{self.host}:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.account_url};"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary() -> Path:
    if BINARY.exists():
        return BINARY
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("Azurite needs node and npm, which are not installed")
    subprocess.run(
        [npm, "install", "--prefix", str(TOOLS), "azurite@3", "--no-audit", "--no-fund"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return BINARY


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Start ``azurite-blob`` in memory on a free port; stop it at the end of the session."""
    binary = _binary()
    port = _free_port()
    location = tempfile.mkdtemp(prefix="azurite-")
    proc = subprocess.Popen(
        dev.command(port, binary=binary),
        cwd=location,  # --inMemoryPersistence excludes --location; keep stray files here
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"azurite-blob exited with {proc.returncode}: {err[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("azurite-blob did not start in 60 s") from None
                time.sleep(0.1)
        yield Azurite("127.0.0.1", port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(location, ignore_errors=True)
