"""The one factory of Speech clients: settings in, :class:`SpeechClients` out.

This is the only place that turns the key, token and Entra settings into auth:

* ``AVATARPIPE_SPEECH_KEY`` set -> ``Ocp-Apim-Subscription-Key``;
* else ``AVATARPIPE_SPEECH_TOKEN`` set -> that fixed bearer token (short-lived: tests, one-offs);
* else a ``credential`` passed in (any ``azure.core.credentials.TokenCredential``), or on the
  ``azure`` backend ``azure.identity.DefaultAzureCredential`` (managed identity, workload identity,
  ``az login``) -> Entra bearer tokens for :data:`ENTRA_SCOPE`, cached and refreshed before they
  expire by azure-core's ``BearerTokenCredentialPolicy``;
* else (the emulator) its local key :data:`EMULATOR_KEY`.

Entra tokens are accepted only on a resource's custom-domain endpoint
(``https://<name>.cognitiveservices.azure.com``); a regional endpoint fails here with one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

import httpx
from azure.core.credentials import TokenCredential

from avatarpipe.errors import ConfigError
from avatarpipe.settings import Settings
from avatarpipe.speech.auth import BearerAuth, KeyAuth
from avatarpipe.speech.batch_avatar import BatchAvatarClient
from avatarpipe.speech.custom_voice import CustomVoiceClient
from avatarpipe.speech.emulator_admin import EmulatorAdminClient
from avatarpipe.speech.pipeline import Pipeline
from avatarpipe.speech.ratelimit import RateBudget, TokenBucket
from avatarpipe.speech.retry import RetryPolicy

__all__ = ["EMULATOR_KEY", "ENTRA_SCOPE", "SpeechClients", "check_auth", "open_speech"]

EMULATOR_KEY = "local-emulator-key"
"""Sent to an emulator when no key or token is set (it accepts any key, but wants one)."""

ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
"""The Entra scope of Azure AI Speech (and every Cognitive Services resource)."""

REGIONAL_SUFFIX = ".api.cognitive.microsoft.com"

Backend = Literal["emulator", "azure"]


@dataclass
class SpeechClients:
    """The clients of one Speech resource over one shared :class:`Pipeline`.

    Use it as a context manager (or call :meth:`close`): it closes the pipeline, the admin
    client and a credential the factory made.

    Attributes:
        pipeline: The shared pipeline (auth, retry, budget, ``request_count``).
        batch: The batch avatar synthesis API.
        voice: The custom voice API.
        admin: The emulator's admin API (``None`` on Azure).
    """

    pipeline: Pipeline
    batch: BatchAvatarClient
    voice: CustomVoiceClient
    admin: EmulatorAdminClient | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Close the admin client, the pipeline and anything else the factory opened."""
        if self.admin is not None:
            self.admin.close()
        self.pipeline.close()
        for closer in self._closers:
            closer()

    def close_with(self, closer: Callable[[], None]) -> None:
        """Call ``closer`` when the clients close (e.g. the client of a shared budget).

        Args:
            closer: What to call, after the pipeline is closed.
        """
        self._closers.append(closer)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_speech(
    settings: Settings,
    *,
    endpoint: str | None = None,
    backend: Backend | None = None,
    budget: RateBudget | None = None,
    credential: TokenCredential | None = None,
    http: httpx.Client | None = None,
) -> SpeechClients:
    """Build the Speech clients from the settings (the only factory).

    Args:
        settings: Endpoint, key or token, api versions, timeouts, retries,
            ``requests_per_minute``.
        endpoint: The endpoint; ``settings.speech_endpoint`` when omitted.
        backend: ``azure`` or ``emulator``; ``settings.resolved_backend`` when omitted.
        budget: The rate budget; a :class:`TokenBucket` at ``settings.requests_per_minute``
            when omitted.
        credential: An Entra token credential to use instead of the settings' key or token.
        http: The ``httpx.Client`` of the pipeline (its transport decides where requests go);
            one is made and closed with the clients when omitted.

    Returns:
        The clients; close them (a context manager).

    Raises:
        ConfigError: No endpoint, both a key and a token, or Entra on a regional endpoint.
    """
    url = endpoint or settings.speech_endpoint
    if not url:
        raise ConfigError("AVATARPIPE_SPEECH_ENDPOINT: not set (needed for the Speech clients)")
    kind: Backend = backend or settings.resolved_backend
    closers: list[Callable[[], None]] = []
    auth, admin_key = _auth(settings, url, kind, credential, closers)
    pipeline = Pipeline(
        url,
        auth=auth,
        http=http,
        timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
        retry=RetryPolicy(
            max_attempts=settings.max_attempts, max_total_s=settings.max_retry_time_s
        ),
        budget=budget or TokenBucket(settings.requests_per_minute),
    )
    admin = (
        EmulatorAdminClient(url, key=admin_key, timeout=pipeline.timeout)
        if kind == "emulator"
        else None
    )
    return SpeechClients(
        pipeline=pipeline,
        batch=BatchAvatarClient(pipeline, api_version=settings.batch_avatar_api_version),
        voice=CustomVoiceClient(pipeline, api_version=settings.custom_voice_api_version),
        admin=admin,
        _closers=closers,
    )


def check_auth(
    settings: Settings,
    *,
    endpoint: str | None = None,
    backend: Backend | None = None,
    credential: TokenCredential | None = None,
) -> None:
    """Fail early when the auth the settings ask for cannot work (nothing is contacted).

    Args:
        settings: The settings.
        endpoint: The endpoint; ``settings.speech_endpoint`` when omitted.
        backend: The backend; ``settings.resolved_backend`` when omitted.
        credential: An Entra credential that will be passed to :func:`open_speech`.

    Raises:
        ConfigError: Both a key and a token are set, or Entra ID would be used with a regional
            endpoint (Entra needs the resource's custom-domain endpoint).
    """
    if settings.speech_key is not None and settings.speech_token is not None:
        raise ConfigError(
            "AVATARPIPE_SPEECH_KEY and AVATARPIPE_SPEECH_TOKEN: set one of them, not both"
        )
    url = endpoint or settings.speech_endpoint or ""
    kind = backend or settings.resolved_backend
    fixed = settings.speech_key is not None or settings.speech_token is not None
    entra = credential is not None or (not fixed and kind == "azure")
    if entra and httpx.URL(url).host.lower().endswith(REGIONAL_SUFFIX):
        unset = "" if fixed else "AVATARPIPE_SPEECH_KEY is not set and "
        raise ConfigError(
            f"{unset}{url} is a regional endpoint: Entra ID sign-in needs the resource's "
            "custom-domain endpoint (https://<name>.cognitiveservices.azure.com); set the key "
            "or use that endpoint"
        )


def _auth(
    settings: Settings,
    endpoint: str,
    backend: Backend,
    credential: TokenCredential | None,
    closers: list[Callable[[], None]],
) -> tuple[httpx.Auth, str | None]:
    """The auth of the pipeline, and the key the emulator's admin API gets (if any)."""
    check_auth(settings, endpoint=endpoint, backend=backend, credential=credential)
    key, token = settings.speech_key, settings.speech_token
    if credential is None and key is not None:
        return KeyAuth(key), key.get_secret_value().strip()
    if credential is None and token is not None:
        return BearerAuth(token), token.get_secret_value().strip()
    if credential is None and backend == "emulator":
        return KeyAuth(EMULATOR_KEY), EMULATOR_KEY
    # Imported here: azure-identity (msal, cryptography) costs a third of a second to import.
    from azure.identity import DefaultAzureCredential, get_bearer_token_provider

    if credential is None:
        made = DefaultAzureCredential()
        closers.append(made.close)
        credential = made
    return BearerAuth(get_bearer_token_provider(credential, ENTRA_SCOPE)), None
