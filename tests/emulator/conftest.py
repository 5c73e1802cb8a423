"""Fixtures for the emulator tests: emulators on free ports with the fast placeholder renderer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from emu_fixtures import start_server

from avatarpipe.emulator.server import EmulatorServer
from avatarpipe.speech.emulator_admin import EmulatorAdminClient

KEY = "test-key"
AVATAR_V = "2024-08-01"
CV_V = "2026-01-01"
SMALL = (160, 90)


class Emu:
    """A running emulator: ``client`` (raw HTTP, authenticated) and ``api`` (its admin client).

    ``admin(method, path)`` sends raw requests to ``/emulator/`` to test those routes themselves;
    everything else sets the emulator up through ``api``.
    """

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.url = server.url
        self.client = httpx.Client(
            base_url=server.url, headers={"Ocp-Apim-Subscription-Key": KEY}, timeout=30
        )
        self.api = EmulatorAdminClient(server.url, key=server.config.key)

    def put_job(self, job_id: str, body: dict[str, Any], version: str = AVATAR_V) -> httpx.Response:
        return self.client.put(
            f"/avatar/batchsyntheses/{job_id}", params={"api-version": version}, json=body
        )

    def get_job(self, job_id: str, version: str = AVATAR_V) -> httpx.Response:
        return self.client.get(f"/avatar/batchsyntheses/{job_id}", params={"api-version": version})

    def wait_job(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            resp = self.get_job(job_id)
            assert resp.status_code == 200, resp.text
            body: dict[str, Any] = resp.json()
            if body["status"] in ("Succeeded", "Failed"):
                return body
            assert time.monotonic() < deadline, f"job {job_id} still {body['status']}"
            time.sleep(0.05)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, f"/emulator{path}", **kwargs)

    def stats(self) -> dict[str, Any]:
        return self.api.stats()

    job_body = staticmethod(lambda *a, **k: job_body(*a, **k))
    key = KEY

    def close(self) -> None:
        self.api.close()
        self.client.close()
        self.server.stop()


def job_body(text: str = "Hello from the emulator.", **avatar: Any) -> dict[str, Any]:
    return {
        "inputKind": "PlainText",
        "synthesisConfig": {"voice": "en-US-AvaMultilingualNeural"},
        "inputs": [{"content": text}],
        "avatarConfig": {
            "talkingAvatarCharacter": "lisa",
            "talkingAvatarStyle": "casual-sitting",
            "videoCodec": "h264",
            **avatar,
        },
    }


EmuFactory = Callable[..., Emu]


@pytest.fixture
def make_emu(tmp_path: Path) -> Iterator[EmuFactory]:
    started: list[Emu] = []

    def make(state_dir: Path | None = None, renderer: Any = None, **overrides: Any) -> Emu:
        server = start_server(
            state_dir or tmp_path / f"state{len(started)}",
            renderer,
            frame=SMALL,
            **{"key": KEY, **overrides},
        )
        emu = Emu(server)
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.close()


@pytest.fixture
def emu(make_emu: EmuFactory) -> Emu:
    return make_emu()
