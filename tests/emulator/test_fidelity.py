"""Behaviours written from Microsoft's docs and samples, each against a real emulator.

- A custom avatar speaking with its own voice (``useBuiltInVoice: true``, no
  ``synthesisConfig.voice``) is accepted, as Microsoft's C# batch avatar sample sends it; the docs
  say the option is only valid with ``customized: true``.
- A PUT whose body is not JSON (``Content-Type``) is 415 ``UnsupportedMediaType`` (the specs'
  ``consumes: application/json`` and ``ErrorCode`` enum).
- A missing key and a wrong key get the two different 401 messages Azure gives.
- Deleting a job while it renders leaves no traceback in the emulator's log.
- The same create sent again (same id, same body) is answered with the existing job, and
  avatarpipe's client gets that job (the specs speak of a 400 only for a non-identical request).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import spec_schemas

from avatarpipe.connect import open_speech
from avatarpipe.emulator.core import INVALID_KEY_MESSAGE, MISSING_KEY_MESSAGE
from avatarpipe.emulator.placeholder import PlaceholderRenderer
from avatarpipe.emulator.rendering import RenderedInput, RenderSpec
from avatarpipe.settings import Settings
from avatarpipe.speech.models import BatchSynthesis

V = "2024-08-01"


def _built_in_voice_job(**avatar: Any) -> dict[str, Any]:
    return {
        "inputKind": "PlainText",
        "inputs": [{"content": "Hello, I speak with my own voice."}],
        "avatarConfig": {
            "talkingAvatarCharacter": "contoso-ceo",
            "customized": True,
            "useBuiltInVoice": True,
            "videoFormat": "mp4",
            "videoCodec": "h264",
            **avatar,
        },
    }


def test_custom_avatar_with_its_built_in_voice_is_accepted(emu: Any) -> None:
    emu.api.seed({"avatars": [{"name": "contoso-ceo", "deployed": True}]})
    # avatarpipe's client accepts it too, and sends it unchanged.
    request = BatchSynthesis.model_validate(_built_in_voice_job()).to_request()
    assert request == _built_in_voice_job()
    resp = emu.put_job("builtin-1", request)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    spec_schemas.validate(spec_schemas.BATCH_AVATAR, "BatchSynthesis", created)
    assert created["avatarConfig"]["useBuiltInVoice"] is True
    assert "synthesisConfig" not in created
    assert emu.wait_job("builtin-1")["status"] == "Succeeded"


def test_built_in_voice_needs_a_custom_avatar(emu: Any) -> None:
    resp = emu.put_job(
        "builtin-2", _built_in_voice_job(talkingAvatarCharacter="lisa", customized=False)
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["target"] == "avatarConfig.useBuiltInVoice"
    # Without the built-in voice, PlainText still needs a voice.
    body = _built_in_voice_job(useBuiltInVoice=False)
    emu.api.seed({"avatars": [{"name": "contoso-ceo", "deployed": True}]})
    resp = emu.put_job("builtin-3", body)
    assert resp.status_code == 400 and "synthesisConfig.voice" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/avatar/batchsyntheses/ct-1", "text/plain"),
        ("/avatar/batchsyntheses/ct-2", "application/x-www-form-urlencoded"),
        ("/customvoice/projects/ct-3", "application/xml"),
    ],
)
def test_a_put_that_is_not_json_is_415(emu: Any, path: str, content_type: str) -> None:
    version = V if path.startswith("/avatar") else "2026-01-01"
    resp = emu.client.put(
        path,
        params={"api-version": version},
        content=b'{"inputKind": "PlainText"}',
        headers={"Content-Type": content_type},
    )
    assert resp.status_code == 415, resp.text
    assert resp.json()["error"]["code"] == "UnsupportedMediaType"
    assert resp.headers["x-ms-error-code"] == "UnsupportedMediaType"
    spec_schemas.validate(spec_schemas.BATCH_AVATAR, "ErrorResponse", resp.json())
    assert emu.stats()["jobs_created"] == 0


def test_json_with_a_charset_is_json(emu: Any) -> None:
    import json

    resp = emu.client.put(
        "/avatar/batchsyntheses/ct-ok",
        params={"api-version": V},
        content=json.dumps(emu.job_body()).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert resp.status_code == 201, resp.text


def test_missing_and_wrong_keys_get_azures_two_messages(emu: Any) -> None:
    import httpx

    url = f"{emu.url}/avatar/batchsyntheses"
    missing = httpx.get(url, params={"api-version": V})
    wrong = httpx.get(url, params={"api-version": V}, headers={"Ocp-Apim-Subscription-Key": "x"})
    bad_token = httpx.get(url, params={"api-version": V}, headers={"Authorization": "Bearer x"})
    for resp in (missing, wrong, bad_token):
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "Unauthorized"
        spec_schemas.validate(spec_schemas.BATCH_AVATAR, "ErrorResponse", resp.json())
    assert missing.json()["error"]["message"] == MISSING_KEY_MESSAGE
    assert "missing subscription key" in MISSING_KEY_MESSAGE
    assert wrong.json()["error"]["message"] == INVALID_KEY_MESSAGE
    assert bad_token.json()["error"]["message"] == INVALID_KEY_MESSAGE
    assert "invalid subscription key" in INVALID_KEY_MESSAGE


class _GatedRenderer:
    """Renders, then blocks before writing its last file (a subtitle) until released.

    Like the real renderer, it writes several files one after another into the job's folder, so
    a DELETE while it waits removes the folder under its feet.
    """

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.inner = PlaceholderRenderer((160, 90))

    def render(self, spec: RenderSpec, out_dir: Path, stem: str) -> RenderedInput:
        done = self.inner.render(spec, out_dir, stem)
        self.entered.set()
        assert self.release.wait(30)
        subtitles = out_dir / f"{stem}.vtt"
        subtitles.write_text("WEBVTT\n", encoding="utf-8")
        done.extra_files.append(subtitles)
        return done


def test_deleting_a_running_job_leaves_no_traceback(
    make_emu: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="avatarpipe.emulator")
    gate = _GatedRenderer()
    emu = make_emu(renderer=gate)
    assert emu.put_job("del-1", emu.job_body()).status_code == 201
    assert gate.entered.wait(30), "the job never started rendering"
    assert emu.get_job("del-1").json()["status"] == "Running"
    deleted = emu.client.delete("/avatar/batchsyntheses/del-1", params={"api-version": V})
    assert deleted.status_code == 204
    gate.release.set()
    deadline = time.monotonic() + 30
    while not any("deleted while rendering" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.05)
    emulator_records = [r for r in caplog.records if r.name.startswith("avatarpipe.emulator")]
    assert not [r for r in emulator_records if r.exc_info or r.levelno >= logging.WARNING]
    assert "Traceback" not in caplog.text
    assert emu.get_job("del-1").status_code == 404


def test_the_client_is_correct_when_a_create_is_sent_twice(emu: Any) -> None:
    """avatarpipe's client re-sending the same create (as after a lost 201) gets the same job."""
    settings = Settings(speech_endpoint=emu.url, speech_key=emu.key)  # type: ignore[arg-type]
    job = BatchSynthesis.model_validate(emu.job_body())
    with open_speech(settings, backend="emulator") as clients:
        first = clients.batch.create_synthesis("twice-1", job)
        again = clients.batch.create_synthesis("twice-1", job)
    assert again.internal_id == first.internal_id
    assert emu.stats()["puts_by_job_id"] == {"twice-1": 1}
