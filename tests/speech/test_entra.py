"""Passwordless auth through the one factory: Entra tokens, refreshed before they expire.

The long run goes over real HTTP to an emulator on a free port (it accepts bearer tokens); a
wrapper around the real transport records which token each request carried and when it left.
Only Azure itself (the token issuer) is faked.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from azure.core.credentials import AccessToken
from flow_emu import Emu

from avatarpipe.connect import EMULATOR_KEY, ENTRA_SCOPE, check_auth, open_speech
from avatarpipe.errors import ConfigError
from avatarpipe.settings import Settings
from avatarpipe.speech.emulator_admin import EmulatorAdminClient
from avatarpipe.speech.models import BatchSynthesis
from avatarpipe.speech.ratelimit import UnlimitedBudget

JOB = BatchSynthesis.model_validate(
    {
        "inputKind": "PlainText",
        "inputs": [{"content": "Hello."}],
        "synthesisConfig": {"voice": "en-US-AvaMultilingualNeural"},
        "avatarConfig": {"talkingAvatarCharacter": "lisa", "talkingAvatarStyle": "casual-sitting"},
    }
)


@dataclass
class ShortLivedCredential:
    """A ``TokenCredential`` whose tokens expire ``lifetime_s`` after they are issued."""

    lifetime_s: float
    issued: dict[str, float] = field(default_factory=dict)
    scopes: list[tuple[str, ...]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        with self._lock:
            self.scopes.append(scopes)
            token = f"entra-token-{len(self.issued) + 1:03d}-do-not-log"
            expires_on = time.time() + self.lifetime_s
            self.issued[token] = expires_on
            # AccessToken.expires_on is whole seconds: round down, never past the real expiry.
            return AccessToken(token, int(expires_on))


class RecordingTransport(httpx.BaseTransport):
    """The real transport, noting each request's bearer token and the time it is sent."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.sent: list[tuple[float, str | None, str | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("Authorization")
        token = auth.removeprefix("Bearer ") if auth else None
        self.sent.append((time.time(), token, request.headers.get("Ocp-Apim-Subscription-Key")))
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def test_a_long_run_succeeds_across_token_expiries(
    emu: Emu, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    credential = ShortLivedCredential(lifetime_s=2.0)
    transport = RecordingTransport()
    with (
        httpx.Client(transport=transport) as http,
        open_speech(
            Settings(),
            endpoint=emu.url,
            backend="emulator",
            budget=UnlimitedBudget(),
            credential=credential,
            http=http,
        ) as clients,
    ):
        started = time.time()
        clients.batch.create_synthesis("entra-long-run", JOB)
        polls = 0
        while time.time() - started < 5.5:  # more than two 2 s token lifetimes
            assert clients.batch.get_synthesis("entra-long-run").id == "entra-long-run"
            polls += 1
            time.sleep(0.25)
        listed = [j.id for j in clients.batch.list_syntheses()]
        described = repr(clients)
    assert "entra-long-run" in listed
    assert polls >= 15
    assert len(transport.sent) == polls + 2 == clients.pipeline.request_count
    assert all(scopes == (ENTRA_SCOPE,) for scopes in credential.scopes)
    tokens = [token for _, token, _ in transport.sent]
    assert None not in tokens and all(key is None for *_, key in transport.sent)
    assert set(tokens) <= set(credential.issued), "only tokens the credential issued are sent"
    assert len(set(tokens)) >= 3, "the run spans more than two expiries: new tokens were fetched"
    late = [(t, sent_at) for sent_at, t, _ in transport.sent if sent_at >= credential.issued[t]]
    assert late == [], "a token was sent after it expired"
    for token in credential.issued:
        assert token not in caplog.text and token not in described


def test_tokens_are_cached_until_they_near_expiry(emu: Emu) -> None:
    credential = ShortLivedCredential(lifetime_s=3600.0)
    transport = RecordingTransport()
    with (
        httpx.Client(transport=transport) as http,
        open_speech(
            Settings(), endpoint=emu.url, backend="emulator", credential=credential, http=http
        ) as clients,
    ):
        for _ in range(4):
            assert clients.batch.find_synthesis("no-such-job") is None
    assert len(credential.issued) == 1, "an hour-long token is fetched once, then reused"
    (token,) = credential.issued
    assert [t for _, t, _ in transport.sent] == [token] * 4


def test_azure_without_a_key_signs_in_with_default_azure_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[ShortLivedCredential] = []

    class FakeDefaultAzureCredential(ShortLivedCredential):
        """Stands in for Azure's token issuer (no network, no real identity)."""

        def __init__(self) -> None:
            super().__init__(lifetime_s=3600.0)
            self.closed = False
            made.append(self)

        def close(self) -> None:
            self.closed = True

    import azure.identity

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", FakeDefaultAzureCredential)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "op-1", "status": "Running"})

    settings = Settings(speech_endpoint="https://contoso.cognitiveservices.azure.com")
    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as http,
        open_speech(settings, http=http) as clients,
    ):
        assert clients.admin is None
        clients.voice.get_operation("op-1")
    (credential,) = made
    assert credential.scopes == [(ENTRA_SCOPE,)]
    (token,) = credential.issued
    assert seen[0].headers["Authorization"] == f"Bearer {token}"
    assert "Ocp-Apim-Subscription-Key" not in seen[0].headers
    assert credential.closed, "the credential the factory made is closed with the clients"


@pytest.mark.parametrize("injected", [False, True])
def test_entra_on_a_regional_endpoint_fails_with_one_line(injected: bool) -> None:
    settings = Settings(speech_endpoint="https://westeurope.api.cognitive.microsoft.com")
    credential = ShortLivedCredential(lifetime_s=60.0) if injected else None
    with pytest.raises(ConfigError) as info:
        open_speech(settings, credential=credential)
    message = info.value.message
    assert "\n" not in message
    assert "regional endpoint" in message and "cognitiveservices.azure.com" in message
    assert credential is None or credential.issued == {}, "no token is fetched for nothing"


@pytest.mark.parametrize(
    ("endpoint", "env", "problem"),
    [
        ("https://contoso.cognitiveservices.azure.com", {}, None),
        ("https://westeurope.api.cognitive.microsoft.com", {"speech_key": "k"}, None),
        ("https://westeurope.api.cognitive.microsoft.com", {"speech_token": "t"}, None),
        ("https://westeurope.api.cognitive.microsoft.com", {}, "AVATARPIPE_SPEECH_KEY is not set"),
        ("https://x.example", {"speech_key": "k", "speech_token": "t"}, "not both"),
    ],
)
def test_check_auth_fails_early_without_contacting_anything(
    endpoint: str, env: dict[str, str], problem: str | None
) -> None:
    settings = Settings(speech_endpoint=endpoint, **env)  # type: ignore[arg-type]
    if problem is None:
        check_auth(settings)
    else:
        with pytest.raises(ConfigError, match=problem):
            check_auth(settings)


def test_a_key_wins_and_the_emulator_gets_its_local_key(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_identity(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no Entra sign-in when a key is set or on the emulator")

    import azure.identity

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", no_identity)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "op-1", "status": "Running"})

    regional = Settings(
        speech_endpoint="https://westeurope.api.cognitive.microsoft.com",
        speech_key="the-resource-key",  # type: ignore[arg-type]
    )
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        with open_speech(regional, http=http) as clients:
            clients.batch.get_operation("op-1")
        with open_speech(Settings(), endpoint="http://127.0.0.1:9", http=http) as local:
            assert isinstance(local.admin, EmulatorAdminClient)
            local.batch.get_operation("op-1")
    assert [r.headers["Ocp-Apim-Subscription-Key"] for r in seen] == [
        "the-resource-key",
        EMULATOR_KEY,
    ]
    assert all("Authorization" not in r.headers for r in seen)
