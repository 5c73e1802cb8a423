"""How flows reach the outside world: the settings, the Speech clients, the shared budget.

This is the one module of ``flows/`` that reads the settings. Flow parameters land in the Prefect
database, so they never carry secrets: a :class:`SpeechTarget` names the endpoint and backend,
and the key or Entra credential is resolved from the settings by
:func:`avatarpipe.connect.open_speech` inside the task that needs it.

Every request to the service first takes a slot from one Prefect **global concurrency limit**
with slot decay (a rate limit), so all flow runs and workers that share a Prefect server stay
together inside the service's request budget. Each run sets that limit to its configured budget
(:func:`ensure_rate_limit`); the model and its proof are in :mod:`avatarpipe.speech.ratelimit`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Literal

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from pydantic import BaseModel, Field

from avatarpipe.connect import SpeechClients, open_speech
from avatarpipe.errors import ConfigError
from avatarpipe.settings import Settings, default_requests_per_minute, load_settings
from avatarpipe.speech.ratelimit import (
    LimitState,
    RequestPace,
    SharedLimitBudget,
    UnlimitedBudget,
    is_slot_refusal,
    plan_limit,
)
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

_QUEUES: dict[str, threading.Lock] = {}
"""One lock per limit name: the callers of this process ask the Prefect server one at a time."""
_QUEUES_LOCK = threading.Lock()


class SpeechTarget(BaseModel):
    """Where the Speech service is (no secrets: this is a flow parameter).

    Attributes:
        endpoint: The resource endpoint (``https://westeurope.api.cognitive.microsoft.com`` or
            the emulator's ``http://127.0.0.1:8765``).
        backend: ``azure`` or ``emulator`` (the emulator also has an admin API).
        rate_limit_name: The Prefect global concurrency limit shared by every run.
        requests_per_minute: The request budget; the shared limit is set to it at the start of
            every run. By default the backend's (Azure: 2, the documented S0 limit).
    """

    endpoint: str
    backend: Literal["emulator", "azure"] = "emulator"
    rate_limit_name: str = "avatarpipe-speech-requests"
    requests_per_minute: float = Field(
        default_factory=lambda data: default_requests_per_minute(data.get("backend", "emulator")),
        gt=0,
        allow_inf_nan=False,
    )

    def pace(self) -> RequestPace:
        """The request budget as a :class:`RequestPace` (N a minute)."""
        return RequestPace(self.requests_per_minute)


class PrefectRateBudget(SharedLimitBudget):
    """The shared request budget: a Prefect global concurrency limit with slot decay.

    Every slot is one ``POST /v2/concurrency_limits/increment`` in ``rate_limit`` mode (the
    server decides); after a refusal the limit is read and the caller sleeps until its slot is
    due, saying so once when that is long (see
    :class:`~avatarpipe.speech.ratelimit.SharedLimitBudget`).

    Args:
        name: The limit's name (made by :func:`ensure_rate_limit`).
        pace: The pace the limit was set to (named in the "waiting" notice).
    """

    def __init__(self, name: str, pace: RequestPace) -> None:
        with _QUEUES_LOCK:
            queue = _QUEUES.setdefault(name, threading.Lock())
        super().__init__(self._take, self._read, pace, queue=queue)
        self.name = name
        self._client: SyncPrefectClient | None = None

    def _api(self) -> SyncPrefectClient:
        """The Prefect client, opened at the first request (used under the queue's lock)."""
        if self._client is None:
            client = get_client(sync_client=True)
            client.__enter__()
            self._client = client
        return self._client

    def close(self) -> None:
        """Close the Prefect client (:func:`open_clients` does it with the Speech clients)."""
        with self._queue:
            client, self._client = self._client, None
        if client is not None:
            client.__exit__(None, None, None)

    def _take(self) -> bool:
        """Ask the server for one slot.

        Raises:
            ConfigError: The limit does not exist (deleted while the run was going).
        """
        try:
            granted = (
                self._api()
                .increment_concurrency_slots(names=[self.name], slots=1, mode="rate_limit")
                .json()
            )
        except Exception as exc:
            if is_slot_refusal(exc):
                return False
            raise
        if not granted:
            raise ConfigError(
                f"the Prefect rate limit {self.name!r} does not exist; start the run again "
                "(it creates the limit)"
            )
        return True

    def _read(self) -> LimitState:
        return _state(self._api().read_global_concurrency_limit_by_name(self.name))


def _state(limit: GlobalConcurrencyLimitResponse) -> LimitState:
    return LimitState(
        limit=limit.limit,
        slot_decay_per_second=limit.slot_decay_per_second or 0.0,
        active_slots=limit.active_slots,
        updated=limit.updated.timestamp() if limit.updated else time.time(),
    )


def ensure_rate_limit(name: str, budget: float | RequestPace) -> None:
    """Make the shared request limit follow ``pace``: create it, or rewrite it when it differs.

    The limit has one slot that decays every ``pace.spacing_s`` seconds; the module docstring of
    :mod:`avatarpipe.speech.ratelimit` derives why that keeps every minute at the budget. When an
    existing limit has another shape (an earlier run at another rate), it takes the new one at
    once, with :func:`~avatarpipe.speech.ratelimit.plan_limit`'s hold so that no window mixes
    the two rates beyond the new budget. Runs that share the limit share the latest setting.

    Args:
        name: The limit's name.
        budget: The configured budget: requests a minute, or a :class:`RequestPace`.
    """
    pace = budget if isinstance(budget, RequestPace) else RequestPace(budget)
    with get_client(sync_client=True) as client:
        for _ in range(3):
            try:
                current = _state(client.read_global_concurrency_limit_by_name(name))
            except ObjectNotFound:
                try:
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(
                            name=name,
                            limit=pace.limit,
                            slot_decay_per_second=pace.slot_decay_per_second,
                        )
                    )
                except ObjectAlreadyExists:
                    continue  # another run created it meanwhile: compare with that one
                log.info("created rate limit %s: %s", name, pace.label())
                return
            active = plan_limit(current, pace, time.time())
            if active is None:
                return
            client.update_global_concurrency_limit(
                name,
                GlobalConcurrencyLimitUpdate(
                    limit=pace.limit,
                    slot_decay_per_second=pace.slot_decay_per_second,
                    active_slots=active,
                ),
            )
            log.info("rate limit %s now %s", name, pace.label())
            return


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
    if not budgeted:
        return open_speech(
            settings(), endpoint=target.endpoint, backend=target.backend, budget=UnlimitedBudget()
        )
    budget = PrefectRateBudget(target.rate_limit_name, target.pace())
    clients = open_speech(
        settings(), endpoint=target.endpoint, backend=target.backend, budget=budget
    )
    clients.close_with(budget.close)
    return clients
