"""Fixtures for the Speech client tests: a fake clock and clients over ``httpx.MockTransport``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from avatarpipe.connect import SpeechClients
from avatarpipe.speech import BatchAvatarClient, CustomVoiceClient, Pipeline, RetryPolicy
from avatarpipe.speech.auth import BearerAuth, KeyAuth

ENDPOINT = "https://eastus.api.cognitive.microsoft.com"
SECRET_KEY = "k3y-SECRET-0123456789abcdef"


@dataclass
class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class CountingBudget:
    """A rate budget that only counts."""

    calls: int = 0

    def acquire(self, cost: float = 1.0) -> None:
        self.calls += 1


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Service:
    """A recording fake of the Speech service on ``httpx.MockTransport``."""

    handler: Handler
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.handler(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(clock: FakeClock) -> Iterator[Callable[..., tuple[SpeechClients, Service]]]:
    """Clients over one pipeline on a recording fake; ``key``/``token`` pick the auth."""
    made: list[SpeechClients] = []
    https: list[httpx.Client] = []

    def make(handler: Handler, **kwargs: Any) -> tuple[SpeechClients, Service]:
        service = Service(handler)
        http = httpx.Client(transport=httpx.MockTransport(service))
        https.append(http)
        key = kwargs.pop("key", SECRET_KEY)
        token = kwargs.pop("token", None)
        kwargs.setdefault(
            "retry", RetryPolicy(sleep=clock.sleep, clock=clock, max_attempts=6, jitter=0.0)
        )
        auth = KeyAuth(key) if key is not None else BearerAuth(token) if token else None
        pipeline = Pipeline(kwargs.pop("endpoint", ENDPOINT), auth=auth, http=http, **kwargs)
        clients = SpeechClients(
            pipeline=pipeline,
            batch=BatchAvatarClient(pipeline),
            voice=CustomVoiceClient(pipeline),
        )
        made.append(clients)
        return clients, service

    yield make
    for client in made:
        client.close()
    for http in https:
        http.close()


class Fake:
    """Builders of fake service answers (reached through the ``fake`` fixture)."""

    endpoint = ENDPOINT
    key = SECRET_KEY
    CountingBudget = CountingBudget

    @staticmethod
    def json_response(status: int, body: Any = None, **headers: str) -> httpx.Response:
        if body is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    @staticmethod
    def error_response(
        status: int, code: str, message: str, request_id: str = "req-1", **headers: str
    ) -> httpx.Response:
        return httpx.Response(
            status,
            json={"error": {"code": code, "message": message}},
            headers={"apim-request-id": request_id, "x-ms-error-code": code, **headers},
        )

    @staticmethod
    def job_body(job_id: str, status: str = "NotStarted", **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": job_id,
            "status": status,
            "createdDateTime": "2024-03-15T10:28:23.7702311Z",
            "lastActionDateTime": "2024-03-15T10:28:46.363789",
            "inputKind": "PlainText",
            "customVoices": {},
            "properties": {"timeToLiveInHours": 744},
            "synthesisConfig": {"voice": "en-US-AvaMultilingualNeural"},
            "avatarConfig": {
                "talkingAvatarCharacter": "lisa",
                "talkingAvatarStyle": "casual-sitting",
            },
        }
        body.update(extra)
        return body


@pytest.fixture
def fake() -> type[Fake]:
    return Fake
