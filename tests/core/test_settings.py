from __future__ import annotations

from pathlib import Path

import pytest

from avatarpipe.errors import ConfigError
from avatarpipe.settings import load_settings


def test_defaults_run_on_the_embedded_emulator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    conf = load_settings()
    assert conf.resolved_backend == "emulator"
    assert conf.batch_avatar_api_version == "2024-08-01"
    assert conf.custom_voice_api_version == "2026-01-01"
    assert conf.output_dir == Path("outputs")


def test_the_request_budget_defaults_to_the_backend(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Azure: the documented 2 a minute on S0; the emulator (no limit of its own): 600."""
    monkeypatch.chdir(tmp_path)
    assert load_settings().requests_per_minute == 600
    assert load_settings(backend="azure").requests_per_minute == 2
    monkeypatch.setenv("AVATARPIPE_SPEECH_ENDPOINT", "https://x.cognitiveservices.azure.com")
    assert load_settings().requests_per_minute == 2
    assert load_settings(backend="emulator").requests_per_minute == 600
    monkeypatch.setenv("AVATARPIPE_REQUESTS_PER_MINUTE", "6")
    assert load_settings().requests_per_minute == 6  # the setting wins


def test_environment_and_dotenv_are_read_and_the_key_stays_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "AVATARPIPE_SPEECH_ENDPOINT=https://westeurope.api.cognitive.microsoft.com/\n"
        "AVATARPIPE_SPEECH_KEY=0123456789abcdef0123456789abcdef\n"
        "PREFECT_API_URL=http://127.0.0.1:4200/api\n"  # other tools' variables are ignored
    )
    monkeypatch.setenv("AVATARPIPE_BATCH_AVATAR_API_VERSION", "2024-04-15-preview")
    conf = load_settings()
    assert conf.speech_endpoint == "https://westeurope.api.cognitive.microsoft.com"
    assert conf.resolved_backend == "azure"
    assert conf.batch_avatar_api_version == "2024-04-15-preview"
    assert conf.speech_key is not None
    assert conf.speech_key.get_secret_value() == "0123456789abcdef0123456789abcdef"
    assert "0123456789abcdef" not in repr(conf) and "0123456789abcdef" not in str(conf.model_dump())


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("AVATARPIPE_SPEECH_ENDPOINT", "westeurope.api.cognitive.microsoft.com", "https://"),
        ("AVATARPIPE_READ_TIMEOUT_S", "-1", "greater than 0"),
        ("AVATARPIPE_MAX_ATTEMPTS", "zero", "integer"),
        ("AVATARPIPE_BACKEND", "gcp", "emulator"),
        ("AVATARPIPE_REQUESTS_PER_MINUTE", "0", "greater than 0"),
        ("AVATARPIPE_CUSTOM_VOICE_API_VERSION", " ", "empty"),
        ("AVATARPIPE_REQUESTS_PER_MINUTE", "inf", "finite number"),
        ("AVATARPIPE_REQUESTS_PER_MINUTE", "nan", "finite number"),
        ("AVATARPIPE_REQUESTS_PER_MINUTE", "1e9", "less than or equal to 6000"),
        ("AVATARPIPE_POLL_INTERVAL_S", "inf", "finite number"),
        ("AVATARPIPE_POLL_INTERVAL_S", "0.1", "greater than or equal to 0.5"),
        ("AVATARPIPE_POLL_INTERVAL_S", "601", "less than or equal to 600"),
        ("AVATARPIPE_WAIT_TIMEOUT_S", "-inf", "finite number"),
        ("AVATARPIPE_WAIT_TIMEOUT_S", "172801", "less than or equal to 172800"),
        ("AVATARPIPE_CONNECT_TIMEOUT_S", "nan", "finite number"),
        ("AVATARPIPE_READ_TIMEOUT_S", "1e400", "finite number"),
        ("AVATARPIPE_MAX_RETRY_TIME_S", "86400", "less than or equal to 3600"),
    ],
)
def test_an_invalid_value_names_the_variable_and_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, reason: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.message.startswith(name + ":")
    assert reason in info.value.message
    assert info.value.exit_code == 2
