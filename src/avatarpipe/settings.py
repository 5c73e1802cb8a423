"""Settings from the environment (prefix ``AVATARPIPE_``) and ``.env``.

Every value has a default that works on the embedded default (the emulator, ``outputs/``).
An invalid value fails at start-up with the variable's name and why (:class:`ConfigError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from avatarpipe.errors import ConfigError

__all__ = [
    "AZURE_REQUESTS_PER_MINUTE",
    "EMULATOR_REQUESTS_PER_MINUTE",
    "Settings",
    "default_requests_per_minute",
    "load_settings",
]

ENV_PREFIX = "AVATARPIPE_"

AZURE_REQUESTS_PER_MINUTE = 2.0
"""Azure's documented REST limit for batch avatar synthesis on S0: "2 requests per 1 minute"
(Speech service quotas and limits, "Batch text to speech avatar - REST API limit")."""

EMULATOR_REQUESTS_PER_MINUTE = 600.0
"""The emulator's: it limits nothing unless started with ``rate_limit_per_minute`` (then set
``AVATARPIPE_REQUESTS_PER_MINUTE`` to that figure); 10 a second keeps local runs quick."""


def default_requests_per_minute(backend: str | None) -> float:
    """The request budget of a backend when ``AVATARPIPE_REQUESTS_PER_MINUTE`` is not set.

    Args:
        backend: ``azure`` or ``emulator``.

    Returns:
        :data:`AZURE_REQUESTS_PER_MINUTE` on Azure, else :data:`EMULATOR_REQUESTS_PER_MINUTE`.
    """
    return AZURE_REQUESTS_PER_MINUTE if backend == "azure" else EMULATOR_REQUESTS_PER_MINUTE


def _backend_of(data: dict[str, Any]) -> str:
    """The backend the settings validated so far resolve to (as ``Settings.resolved_backend``)."""
    return str(data.get("backend") or ("azure" if data.get("speech_endpoint") else "emulator"))


def _finite(default: float, high: float, description: str, *, ge: float | None = None) -> Any:
    """A finite number field, above 0 (or at least ``ge``) and at most ``high``."""
    gt = 0 if ge is None else None
    return Field(
        default=default, gt=gt, ge=ge, le=high, allow_inf_nan=False, description=description
    )


class Settings(BaseSettings):
    """All of avatarpipe's configuration.

    Attributes mirror the environment variables: ``speech_endpoint`` is
    ``AVATARPIPE_SPEECH_ENDPOINT`` and so on.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    speech_endpoint: str | None = Field(
        default=None,
        description="https://{region}.api.cognitive.microsoft.com or a custom domain; "
        "unset means the embedded emulator.",
    )
    speech_key: SecretStr | None = Field(
        default=None,
        description="Speech resource key; unset on Azure means Entra ID (DefaultAzureCredential, "
        "which needs the custom-domain endpoint).",
    )
    speech_token: SecretStr | None = Field(
        default=None, description="A fixed bearer token instead of a key (short-lived: one-offs)."
    )
    backend: Literal["emulator", "azure"] | None = Field(
        default=None, description="Force a backend; by default azure when an endpoint is set."
    )
    batch_avatar_api_version: str = "2024-08-01"
    custom_voice_api_version: str = "2026-01-01"

    # Every number is finite and bounded: inf, nan and absurd values fail at start-up.
    connect_timeout_s: float = _finite(10.0, 300, "Seconds to connect, up to 300.")
    read_timeout_s: float = _finite(60.0, 3600, "Seconds to read an answer, up to 3600.")
    max_attempts: int = Field(default=6, ge=1, le=50, description="Attempts per request.")
    max_retry_time_s: float = _finite(600.0, 3600, "Retry budget per request: seconds, up to 3600.")
    requests_per_minute: float = Field(
        default_factory=lambda data: default_requests_per_minute(_backend_of(data)),
        gt=0,
        le=6000,
        allow_inf_nan=False,
        description="Requests to the Speech service in any minute, shared by every run, up to "
        "6000; by default the backend's (Azure: 2, the documented S0 limit).",
    )
    poll_interval_s: float = _finite(20.0, 600, "Seconds between status polls, 0.5 to 600.", ge=0.5)
    wait_timeout_s: float = _finite(
        4 * 3600.0, 48 * 3600, "Deadline of one wait for jobs: seconds, up to 172800 (48 h)."
    )

    output_dir: Path = Path("outputs")

    # Prices (USD) for estimates and cost figures; see docs/operating.md for where they come from.
    price_standard_avatar_per_minute: float = _finite(
        0.60, 1000, "USD per minute of batch video with a standard avatar.", ge=0
    )
    price_custom_avatar_per_minute: float = _finite(
        0.60, 1000, "USD per minute of batch video with a custom avatar.", ge=0
    )
    price_custom_avatar_hosting_per_hour: float = _finite(
        0.60, 1000, "USD per hour a custom avatar stays deployed.", ge=0
    )
    price_custom_voice_hosting_per_hour: float = _finite(
        4.04, 1000, "USD per hour a custom neural voice endpoint runs.", ge=0
    )
    speaking_rate_wpm: float = _finite(
        198.0, 600, "Words a minute the estimate assumes (1.4 syllables a word), 60 to 600.", ge=60
    )
    max_cost_per_run: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="Refuse a run whose estimated cost (USD) is above this; unset: no limit.",
    )

    blob_connection_string: SecretStr | None = Field(
        default=None, description="With AccountKey= or SharedAccessSignature=."
    )
    blob_account_url: str | None = Field(
        default=None,
        description="With an account SAS in the query, or bare: Entra ID (DefaultAzureCredential).",
    )
    blob_container: str = "avatarpipe"

    emulator_resource: Path | None = Field(
        default=None,
        description="The embedded emulator's resource file (its avatars and voices); unset: "
        "the default one shipped in the package.",
    )

    @field_validator("speech_endpoint", "blob_account_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for a local emulator)")
        return value.rstrip("/")

    @field_validator("batch_avatar_api_version", "custom_voice_api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @property
    def resolved_backend(self) -> Literal["emulator", "azure"]:
        """``azure`` when an endpoint is configured (or forced), else ``emulator``."""
        if self.backend is not None:
            return self.backend
        return "azure" if self.speech_endpoint else "emulator"


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation failure into one clear line.

    Args:
        **overrides: Values that win over the environment (e.g. from CLI options).

    Returns:
        The validated settings.

    Raises:
        ConfigError: A value is invalid; the message names the variable and why.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ENV_PREFIX + ".".join(str(p) for p in first["loc"]).upper()
        raise ConfigError(f"{name}: {first['msg']}") from None
