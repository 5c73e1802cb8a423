"""How flows reach the Speech service: connection parameters, the client, the shared budget.

Flow parameters land in the Prefect database, so they never carry secrets: a
:class:`SpeechTarget` names the endpoint and backend, and the key is read from the settings
(``AVATARPIPE_SPEECH_KEY``) inside the task that needs it.

Every request to the service first takes a slot from one Prefect **global concurrency limit**
with slot decay (a rate limit), so all flow runs and workers that share a Prefect server stay
together inside the service's request budget.
"""

from __future__ import annotations

import logging
from typing import Literal

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, Field

from avatarpipe.settings import Settings, load_settings
from avatarpipe.speech.client import SpeechClient
from avatarpipe.speech.retry import RetryPolicy

__all__ = ["PrefectRateBudget", "SpeechTarget", "ensure_rate_limit", "open_client"]

log = logging.getLogger(__name__)

EMULATOR_KEY = "local-emulator-key"
"""Sent to an emulator started without a key (it accepts any key, but wants one)."""


class SpeechTarget(BaseModel):
    """Where the Speech service is (no secrets: this is a flow parameter).

    Attributes:
        endpoint: The resource endpoint (``https://westeurope.api.cognitive.microsoft.com`` or
            the emulator's ``http://127.0.0.1:8765``).
        backend: ``azure`` or ``emulator`` (the emulator also has an admin API).
        rate_limit_name: The Prefect global concurrency limit shared by every run.
        requests_per_minute: The budget the limit is created with when it does not exist.
    """

    endpoint: str
    backend: Literal["emulator", "azure"] = "emulator"
    rate_limit_name: str = "avatarpipe-speech-requests"
    requests_per_minute: float = Field(default=60.0, gt=0)


class PrefectRateBudget:
    """A rate budget backed by a Prefect global concurrency limit with slot decay.

    Args:
        name: The limit's name.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def acquire(self, cost: float = 1.0) -> None:
        """Block until the shared limit grants ``cost`` request slots."""
        rate_limit(self.name, occupy=max(1, round(cost)), strict=True)


def ensure_rate_limit(name: str, requests_per_minute: float) -> None:
    """Create the shared request limit when it does not exist (an existing one is kept).

    The limit holds ``burst`` slots that drain at ``(requests_per_minute - burst) / 60`` per
    second, so no 60 s window ever sees more than ``requests_per_minute`` requests.
    """
    burst = max(1, min(10, int(requests_per_minute // 6) or 1))
    decay = max(requests_per_minute - burst, requests_per_minute / 2) / 60.0
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return
        except ObjectNotFound:
            pass
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=burst, slot_decay_per_second=decay)
        )
        log.info("created rate limit %s: %.1f requests/minute", name, requests_per_minute)


def settings() -> Settings:
    """The process's avatarpipe settings (read when a task needs them)."""
    return load_settings()


def open_client(target: SpeechTarget, *, budgeted: bool = True) -> SpeechClient:
    """A Speech client for ``target`` with the key from the settings.

    Args:
        target: Where the service is.
        budgeted: Take a slot of the shared rate limit before every request.

    Returns:
        A client; close it (it is a context manager).
    """
    conf = settings()
    key = conf.speech_key.get_secret_value() if conf.speech_key else None
    token = conf.speech_token.get_secret_value() if conf.speech_token else None
    if key is None and token is None and target.backend == "emulator":
        key = EMULATOR_KEY
    budget = PrefectRateBudget(target.rate_limit_name) if budgeted else None
    return SpeechClient(
        target.endpoint,
        key=key,
        token=token,
        batch_api_version=conf.batch_avatar_api_version,
        voice_api_version=conf.custom_voice_api_version,
        timeout=httpx.Timeout(conf.read_timeout_s, connect=conf.connect_timeout_s),
        retry=RetryPolicy(max_attempts=conf.max_attempts, max_total_s=conf.max_retry_time_s),
        budget=budget,
    )
