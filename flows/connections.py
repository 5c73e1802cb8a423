"""How flows reach the outside world: the settings, the Speech clients, the shared budget.

This is the one module of ``flows/`` that reads the settings. Flow parameters land in the Prefect
database, so they never carry secrets: a :class:`SpeechTarget` names the endpoint and backend,
and the key or Entra credential is resolved from the settings by
:func:`avatarpipe.connect.open_speech` inside the task that needs it.

Every request to the service first takes a slot from one Prefect **global concurrency limit**
with slot decay (a rate limit), so all flow runs and workers that share a Prefect server stay
together inside the service's request budget.
"""

from __future__ import annotations

import logging
from typing import Literal

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, Field

from avatarpipe.connect import SpeechClients, open_speech
from avatarpipe.errors import ConfigError
from avatarpipe.settings import Settings, load_settings
from avatarpipe.speech.ratelimit import UnlimitedBudget
from avatarpipe.storage.blob import BlobStore, store_from_settings

__all__ = [
    "PrefectRateBudget",
    "SpeechTarget",
    "blob_store",
    "ensure_rate_limit",
    "open_clients",
    "settings",
    "target_from_settings",
]

log = logging.getLogger(__name__)


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


def blob_store() -> BlobStore | None:
    """The blob container from the settings, or ``None`` when none is configured.

    Raises:
        ConfigError: The blob settings are incomplete or contradict each other.
    """
    return store_from_settings(settings())


def target_from_settings() -> SpeechTarget:
    """The Speech target from ``AVATARPIPE_SPEECH_ENDPOINT`` and friends (scheduled runs).

    Raises:
        ConfigError: No endpoint is configured.
    """
    conf = settings()
    if not conf.speech_endpoint:
        raise ConfigError(
            "AVATARPIPE_SPEECH_ENDPOINT is not set: scheduled runs need a Speech endpoint "
            "(or a running emulator's URL with AVATARPIPE_BACKEND=emulator; `make up` sets both)"
        )
    return SpeechTarget(
        endpoint=conf.speech_endpoint,
        backend=conf.resolved_backend,
        requests_per_minute=conf.requests_per_minute,
    )


def open_clients(target: SpeechTarget, *, budgeted: bool = True) -> SpeechClients:
    """The Speech clients for ``target``, authenticated from the settings.

    Args:
        target: Where the service is.
        budgeted: Take a slot of the shared rate limit before every request.

    Returns:
        The clients; close them (a context manager).

    Raises:
        ConfigError: The settings' auth does not fit the endpoint (see
            :func:`avatarpipe.connect.open_speech`).
    """
    budget = PrefectRateBudget(target.rate_limit_name) if budgeted else UnlimitedBudget()
    return open_speech(settings(), endpoint=target.endpoint, backend=target.backend, budget=budget)
