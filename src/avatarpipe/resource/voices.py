"""Custom voice endpoints: the one named in ``customVoices`` is usable from this resource.

Microsoft's documentation leaves this to people clicking in Speech Studio;
:func:`ensure_custom_voice` checks (or does) it before any job is paid for: the CNV endpoint
exists in *this* Speech resource (a 404 means it lives elsewhere), is ``Succeeded`` (a suspended
one is resumed, a deploying one waited for), and serves a ``Succeeded`` model whose ``voiceName``
is the name the script uses.

:func:`list_voice_endpoints`, :func:`check_voice_endpoint`, :func:`suspend_voice_endpoint` and
:func:`resume_voice_endpoint` are what ``avatarpipe voices`` does, on Azure and the emulator
alike (the same custom voice API).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from avatarpipe.batch.wait import wait_until
from avatarpipe.errors import CustomVoiceError, NotFoundError, WaitTimeoutError
from avatarpipe.resource.names import holds
from avatarpipe.speech.models import (
    CustomVoiceStatus,
    Endpoint,
    EndpointKind,
    EndpointProperties,
    Model,
)

__all__ = [
    "VoiceApi",
    "VoiceEndpoint",
    "check_voice_endpoint",
    "ensure_custom_voice",
    "list_voice_endpoints",
    "resume_voice_endpoint",
    "suspend_voice_endpoint",
]

log = logging.getLogger(__name__)

_COPY_STEPS = (
    "the avatar and its voice must be in the same Speech resource: copy the voice model into "
    "this resource (Speech Studio > Custom voice > your project > Train model > Copy to), "
    "deploy it there and put the new deployment id in the script's voice.deployment_id"
)


class VoiceApi(Protocol):
    """The part of the custom voice client used for these checks."""

    def find_endpoint(self, endpoint_id: str) -> Endpoint | None: ...  # noqa: D102

    def get_model(self, model_id: str) -> Model: ...  # noqa: D102

    def resume_endpoint(self, endpoint_id: str) -> Endpoint: ...  # noqa: D102

    def create_endpoint(self, endpoint_id: str, endpoint: Endpoint) -> Endpoint: ...  # noqa: D102

    def list_endpoints(self, filter: str | None = None) -> Iterator[Endpoint]: ...  # noqa: D102

    def list_models(self, filter: str | None = None) -> Iterator[Model]: ...  # noqa: D102

    def suspend_endpoint(self, endpoint_id: str) -> Endpoint: ...  # noqa: D102


@dataclass(frozen=True)
class VoiceEndpoint:
    """A custom voice endpoint of the resource and the voice it serves.

    Attributes:
        id: The endpoint id (the script's ``voice.deployment_id``).
        voice_name: The voice name of its model (the script's ``voice.name``), when known.
        status: ``Succeeded`` (running, billed), ``Disabled`` (suspended, not billed),
            ``Running`` or ``Disabling`` (changing), ``Failed``, ``NotStarted``.
        model_id: Its model.
        kind: ``HighPerformance`` or ``FastResume``, when given.
    """

    id: str
    voice_name: str | None
    status: str
    model_id: str
    kind: str | None = None

    @property
    def note(self) -> str:
        """What the status means for runs and for the bill."""
        return {
            "Succeeded": "running: usable now, billed while it runs",
            "Disabled": "suspended: not billed; the next run resumes it (a few minutes)",
            "Disabling": "suspending",
            "Running": "deploying or resuming",
            "NotStarted": "deploying",
            "Failed": "failed: redeploy it in Speech Studio (Custom voice > Deploy model)",
        }.get(self.status, "")


def _state(endpoint: Endpoint, voices: dict[str, str | None]) -> VoiceEndpoint:
    kind = endpoint.properties.kind if endpoint.properties else None
    return VoiceEndpoint(
        id=str(endpoint.id),
        voice_name=voices.get(endpoint.model_id),
        status=endpoint.status.value if endpoint.status else "unknown",
        model_id=endpoint.model_id,
        kind=kind.value if kind is not None else None,
    )


def list_voice_endpoints(api: VoiceApi) -> list[VoiceEndpoint]:
    """Every custom voice endpoint of this resource, with the voice name each serves.

    Two listings (endpoints, models), following their pages.

    Raises:
        ServiceError: A request failed (``AuthenticationError`` for a wrong key).
        ResponseError: An answer is malformed.
    """
    voices = {str(m.id): m.voice_name for m in api.list_models()}
    return sorted((_state(e, voices) for e in api.list_endpoints()), key=lambda v: v.id)


def _missing(api: VoiceApi, deployment_id: str, what: str) -> CustomVoiceError:
    """The error for an endpoint this resource does not hold, naming those it does."""
    held = holds(
        deployment_id,
        (f"{e.id}" for e in list_voice_endpoints(api)),
        "custom voice endpoints",
    )
    return CustomVoiceError(
        f"{what}: endpoint {deployment_id} does not exist in this Speech resource ({held}); "
        f"{_COPY_STEPS}"
    )


def check_voice_endpoint(
    api: VoiceApi, deployment_id: str, voice_name: str | None = None
) -> VoiceEndpoint:
    """Check a custom voice endpoint without changing it: in this resource, its state and voice.

    Args:
        api: The custom voice client.
        deployment_id: The endpoint id.
        voice_name: The voice name a script uses with it (checked when given).

    Returns:
        The endpoint (any state but ``Failed``: a suspended one is resumed by the next run).

    Raises:
        RequestValidationError: The id is not a UUID.
        CustomVoiceError: Not in this resource (the message names those it holds), failed, or
            serving another voice name.
        ServiceError: A request failed.
    """
    what = f"custom voice {voice_name!r}" if voice_name else "custom voice"
    endpoint = api.find_endpoint(deployment_id)
    if endpoint is None:
        raise _missing(api, deployment_id, what)
    model = api.get_model(endpoint.model_id)
    state = _state(endpoint, {endpoint.model_id: model.voice_name})
    if state.status == "Failed":
        raise CustomVoiceError(f"{what}: endpoint {deployment_id} {state.note}")
    if voice_name is not None and (model.voice_name or "") != voice_name:
        raise CustomVoiceError(
            f"{what}: endpoint {deployment_id} serves the voice {model.voice_name!r}; use that "
            f"name in the script, or the deployment id of {voice_name!r}"
        )
    return state


def _act(api: VoiceApi, deployment_id: str, action: Callable[[str], Endpoint]) -> VoiceEndpoint:
    if api.find_endpoint(deployment_id) is None:
        raise _missing(api, deployment_id, "custom voice")
    try:
        endpoint = action(deployment_id)
    except NotFoundError:  # gone in between
        raise _missing(api, deployment_id, "custom voice") from None
    return _state(endpoint, {endpoint.model_id: api.get_model(endpoint.model_id).voice_name})


def suspend_voice_endpoint(api: VoiceApi, deployment_id: str) -> VoiceEndpoint:
    """Suspend a custom voice endpoint: it stops being billed and keeps its id.

    Raises:
        RequestValidationError: The id is not a UUID.
        CustomVoiceError: Not in this resource (the message names those it holds).
        ServiceError: The service refused (e.g. 409: it is not running) or failed.
    """
    return _act(api, deployment_id, api.suspend_endpoint)


def resume_voice_endpoint(api: VoiceApi, deployment_id: str) -> VoiceEndpoint:
    """Resume a suspended custom voice endpoint (billed again once it runs).

    Raises:
        RequestValidationError: The id is not a UUID.
        CustomVoiceError: Not in this resource (the message names those it holds).
        ServiceError: The service refused (e.g. 409: it is not suspended) or failed.
    """
    return _act(api, deployment_id, api.resume_endpoint)


def _create_endpoint(
    api: VoiceApi, voice_name: str, deployment_id: str, model_id: str, project_id: str | None
) -> Endpoint:
    model = api.get_model(model_id)
    endpoint = api.create_endpoint(
        deployment_id,
        Endpoint(
            display_name=f"{voice_name} (avatarpipe)",
            description="created by avatarpipe",
            project_id=project_id or model.project_id or "",
            model_id=model_id,
            properties=EndpointProperties(kind=EndpointKind.HIGH_PERFORMANCE),
        ),
    )
    log.info("created custom voice endpoint %s for %s", deployment_id, voice_name)
    return endpoint


def ensure_custom_voice(
    api: VoiceApi,
    voice_name: str,
    deployment_id: str,
    *,
    timeout_s: float = 900.0,
    poll_interval_s: float = 10.0,
    create_from_model: str | None = None,
    project_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Endpoint:
    """Make sure a custom voice endpoint is usable by batch avatar jobs in this resource.

    Args:
        api: The custom voice client (same resource as the batch jobs).
        voice_name: The voice name the script uses (``customVoices`` key, SSML ``voice``).
        deployment_id: The CNV endpoint (deployment) id.
        timeout_s: How long to wait for a deploying or resuming endpoint.
        poll_interval_s: Seconds between the first status checks (then a growing back-off).
        create_from_model: Create the endpoint from this model id when it is missing.
        project_id: The project of ``create_from_model`` (defaults to the model's).
        sleep: Injected for tests.
        clock: Injected for tests.

    Returns:
        The endpoint, ``Succeeded``.

    Raises:
        CustomVoiceError: Missing (another resource), failed, or its model's voice name differs.
        WaitTimeoutError: It did not become ``Succeeded`` in time.
    """
    endpoint = api.find_endpoint(deployment_id)
    if endpoint is None:
        if create_from_model is None:
            raise _missing(api, deployment_id, f"custom voice {voice_name!r}")
        endpoint = _create_endpoint(api, voice_name, deployment_id, create_from_model, project_id)
    latest = endpoint
    looked = resumed = False  # the first check uses the endpoint already in hand

    def ready() -> Endpoint | None:
        nonlocal latest, looked, resumed
        if looked:
            found = api.find_endpoint(deployment_id)
            if found is None:
                raise CustomVoiceError(
                    f"custom voice {voice_name!r}: endpoint {deployment_id} disappeared while "
                    "waiting"
                )
            latest = found
        looked = True
        if latest.status == CustomVoiceStatus.DISABLED and not resumed:
            log.info("custom voice endpoint %s is suspended: resuming it", deployment_id)
            latest = api.resume_endpoint(deployment_id)
            resumed = True
        if latest.status == CustomVoiceStatus.FAILED:
            raise CustomVoiceError(
                f"custom voice {voice_name!r}: endpoint {deployment_id} failed to deploy; "
                "redeploy it in Speech Studio (Custom voice > Deploy model) and try again"
            )
        return latest if latest.status == CustomVoiceStatus.SUCCEEDED else None

    def timed_out() -> WaitTimeoutError:
        status = latest.status
        return WaitTimeoutError(
            f"custom voice {voice_name!r}: endpoint {deployment_id} is still "
            f"{status.value if status else 'unknown'} after {timeout_s:.0f} s"
        )

    endpoint = wait_until(
        ready,
        interval=poll_interval_s,
        timeout=timeout_s,
        timed_out=timed_out,
        sleep=sleep,
        clock=clock,
    )
    model = api.get_model(endpoint.model_id)
    if model.status != CustomVoiceStatus.SUCCEEDED:
        raise CustomVoiceError(
            f"custom voice {voice_name!r}: model {endpoint.model_id} of endpoint {deployment_id} "
            f"is {model.status.value if model.status else 'unknown'}, not Succeeded"
        )
    if (model.voice_name or "") != voice_name:
        raise CustomVoiceError(
            f"custom voice {voice_name!r}: endpoint {deployment_id} serves the voice "
            f"{model.voice_name!r}; use that name in the script, or the deployment id of "
            f"{voice_name!r}"
        )
    return endpoint
