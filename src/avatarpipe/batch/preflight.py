"""Pre-flight checks: the custom avatar is deployed and the custom voice lives in the same resource.

Microsoft's "Deploy your custom text to speech avatar model as an endpoint" page asks people to
click through Speech Studio; these functions do it (or check it) before any job is paid for:

* :func:`ensure_custom_voice`: the CNV endpoint named in ``customVoices`` exists in *this*
  Speech resource (a 404 means it lives elsewhere), is ``Succeeded`` (a suspended one is resumed),
  and serves a ``Succeeded`` model whose ``voiceName`` is the name the script uses.
* :func:`ensure_emulator_avatar`: on the emulator, the custom avatar is deployed (on demand).
* :func:`probe_azure_avatar`: on Azure, where deploying avatars has no public API, a minimal
  probe job proves the avatar is usable; a success is cached with an expiry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx

from avatarpipe.errors import (
    AuthenticationError,
    CustomVoiceError,
    DeploymentError,
    PermanentServiceError,
    SynthesisFailedError,
    TransientServiceError,
    WaitTimeoutError,
)
from avatarpipe.speech.models import (
    BatchAvatarConfig,
    BatchSynthesis,
    BatchSynthesisConfig,
    BatchSynthesisInput,
    BatchSynthesisProperties,
    CustomVoiceStatus,
    Endpoint,
    EndpointKind,
    EndpointProperties,
    InputKind,
    Model,
    Status,
    SubtitleType,
    VideoCodec,
)

__all__ = [
    "AvatarStudioSteps",
    "VoiceApi",
    "ensure_custom_voice",
    "ensure_emulator_avatar",
    "probe_azure_avatar",
    "remove_emulator_avatar",
]

log = logging.getLogger(__name__)

AvatarStudioSteps = (
    "deploy it in Speech Studio: Custom Avatar > your project > Deploy model, wait until the "
    "deployment shows Succeeded (each Speech resource holds at most 10 custom avatar "
    "endpoints), and use the same Speech resource (endpoint and key) here"
)

_COPY_STEPS = (
    "the avatar and its voice must be in the same Speech resource: copy the voice model into "
    "this resource (Speech Studio > Custom voice > your project > Train model > Copy to), "
    "deploy it there and put the new deployment id in the script's voice.deployment_id"
)


class VoiceApi(Protocol):
    """The part of the Speech client used for custom voice checks."""

    def find_endpoint(self, endpoint_id: str) -> Endpoint | None: ...  # noqa: D102

    def get_model(self, model_id: str) -> Model: ...  # noqa: D102

    def resume_endpoint(self, endpoint_id: str) -> Endpoint: ...  # noqa: D102

    def create_endpoint(self, endpoint_id: str, endpoint: Endpoint) -> Endpoint: ...  # noqa: D102


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
        api: The Speech client (same endpoint and key as the batch jobs).
        voice_name: The voice name the script uses (``customVoices`` key, SSML ``voice``).
        deployment_id: The CNV endpoint (deployment) id.
        timeout_s: How long to wait for a deploying or resuming endpoint.
        poll_interval_s: Seconds between status checks.
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
            raise CustomVoiceError(
                f"custom voice {voice_name!r}: endpoint {deployment_id} does not exist in this "
                f"Speech resource; {_COPY_STEPS}"
            )
        model = api.get_model(create_from_model)
        endpoint = api.create_endpoint(
            deployment_id,
            Endpoint(
                display_name=f"{voice_name} (avatarpipe)",
                description="created by avatarpipe",
                project_id=project_id or model.project_id or "",
                model_id=create_from_model,
                properties=EndpointProperties(kind=EndpointKind.HIGH_PERFORMANCE),
            ),
        )
        log.info("created custom voice endpoint %s for %s", deployment_id, voice_name)
    deadline = clock() + timeout_s
    resumed = False
    while True:
        status = endpoint.status
        if status == CustomVoiceStatus.SUCCEEDED:
            break
        if status == CustomVoiceStatus.FAILED:
            raise CustomVoiceError(
                f"custom voice {voice_name!r}: endpoint {deployment_id} failed to deploy; "
                "redeploy it in Speech Studio (Custom voice > Deploy model) and try again"
            )
        if status == CustomVoiceStatus.DISABLED and not resumed:
            log.info("custom voice endpoint %s is suspended: resuming it", deployment_id)
            endpoint = api.resume_endpoint(deployment_id)
            resumed = True
            continue
        if clock() >= deadline:
            raise WaitTimeoutError(
                f"custom voice {voice_name!r}: endpoint {deployment_id} is still "
                f"{status.value if status else 'unknown'} after {timeout_s:.0f} s"
            )
        sleep(poll_interval_s)
        found = api.find_endpoint(deployment_id)
        if found is None:
            raise CustomVoiceError(
                f"custom voice {voice_name!r}: endpoint {deployment_id} disappeared while waiting"
            )
        endpoint = found
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


# ------------------------------------------------------------------ emulator avatars


def _admin(http: httpx.Client, method: str, path: str) -> httpx.Response:
    try:
        resp = http.request(method, path)
    except httpx.TransportError as exc:
        raise TransientServiceError(f"{method} {path}: {exc}") from None
    if resp.status_code in (401, 403):
        raise AuthenticationError(
            f"{method} {path}: {resp.status_code}: {_error_message(resp)}; check "
            "AVATARPIPE_SPEECH_KEY"
        )
    if resp.status_code >= 500:
        raise TransientServiceError(f"{method} {path}: {resp.status_code}: {_error_message(resp)}")
    return resp


def ensure_emulator_avatar(
    http: httpx.Client,
    name: str,
    *,
    timeout_s: float = 600.0,
    poll_interval_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Make sure a custom avatar is deployed on the emulator, deploying it when missing.

    Args:
        http: An httpx client whose base URL is the emulator and which sends the key.
        name: The custom avatar model name (``talkingAvatarCharacter``).
        timeout_s: How long to wait for the deployment.
        poll_interval_s: Seconds between status checks.
        sleep: Injected for tests.
        clock: Injected for tests.

    Returns:
        The emulator's view of the avatar (``deployment.status == "Succeeded"``).

    Raises:
        DeploymentError: Unknown model, the 10-deployment cap, or a failed deployment.
        WaitTimeoutError: The deployment did not finish in time.
    """
    resp = _admin(http, "GET", f"/emulator/avatars/{name}")
    if resp.status_code == 404:
        raise DeploymentError(
            f"custom avatar {name!r} does not exist in this Speech resource: train it in Speech "
            "Studio (Custom Avatar > your project > Train model), or fix avatar.character"
        )
    avatar: dict[str, Any] = resp.json()
    status = (avatar.get("deployment") or {}).get("status")
    if status == "Succeeded":
        return avatar
    if status in (None, "Failed", "Deleted"):
        log.info("custom avatar %s is not deployed: deploying it", name)
        deploy = _admin(http, "POST", f"/emulator/avatars/{name}:deploy")
        if deploy.status_code >= 400:
            message = _error_message(deploy)
            raise DeploymentError(f"custom avatar {name!r} could not be deployed: {message}")
    deadline = clock() + timeout_s
    while True:
        resp = _admin(http, "GET", f"/emulator/avatars/{name}")
        avatar = resp.json()
        status = (avatar.get("deployment") or {}).get("status")
        if status == "Succeeded":
            return avatar
        if status == "Failed":
            raise DeploymentError(
                f"custom avatar {name!r}: the deployment failed; {AvatarStudioSteps}"
            )
        if clock() >= deadline:
            raise WaitTimeoutError(
                f"custom avatar {name!r}: deployment still {status} after {timeout_s:.0f} s"
            )
        sleep(poll_interval_s)


def remove_emulator_avatar(http: httpx.Client, name: str) -> None:
    """Remove a custom avatar's deployment on the emulator (hosting is billed while deployed).

    Raises:
        DeploymentError: The emulator refused.
    """
    resp = _admin(http, "DELETE", f"/emulator/avatars/{name}/deployment")
    if resp.status_code >= 400 and resp.status_code != 404:
        raise DeploymentError(f"custom avatar {name!r}: removal failed: {_error_message(resp)}")


def _error_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("error", {}).get("message") or body)
    except ValueError:
        return resp.text[:200]


# ------------------------------------------------------------------ Azure avatars


class ProbeApi(Protocol):
    """The part of the Speech client the Azure avatar probe uses."""

    def find_synthesis(self, job_id: str) -> BatchSynthesis | None: ...  # noqa: D102

    def create_synthesis(  # noqa: D102
        self, job_id: str, job: BatchSynthesis, *, operation_id: str | None = None
    ) -> BatchSynthesis: ...

    def get_synthesis(self, job_id: str) -> BatchSynthesis: ...  # noqa: D102

    def delete_synthesis(self, job_id: str) -> None: ...  # noqa: D102


def _probe_cache_key(endpoint: str, character: str) -> str:
    return hashlib.sha256(f"{endpoint}|{character}".encode()).hexdigest()[:32]


def probe_azure_avatar(
    api: ProbeApi,
    *,
    endpoint: str,
    character: str,
    voice: str,
    custom_voices: dict[str, str] | None = None,
    cache_file: Path,
    ttl: timedelta = timedelta(hours=24),
    timeout_s: float = 1800.0,
    poll_interval_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> bool:
    """Prove a custom avatar is deployed on Azure with the smallest possible job.

    Azure has no public API for custom avatar deployments, so the only in-band check is a job:
    one two-word input, ``customized: true``, no subtitles. A success is cached in
    ``cache_file`` until ``ttl`` passes, so scheduled runs do not pay for a probe each time.

    Args:
        api: The Speech client.
        endpoint: The resource endpoint (part of the cache key; no secret).
        character: The custom avatar model name.
        voice: A voice to speak the probe with.
        custom_voices: ``customVoices`` for the probe (when ``voice`` is a custom one).
        cache_file: JSON file remembering successful probes.
        ttl: How long a success stays trusted.
        timeout_s: How long to wait for the probe job.
        poll_interval_s: Seconds between polls.
        sleep: Injected for tests.
        clock: Injected for tests.
        now: Injected for tests.

    Returns:
        ``True`` when a probe ran, ``False`` when a cached success was used.

    Raises:
        DeploymentError: The probe failed: the avatar is not deployed (with the Studio steps).
        WaitTimeoutError: The probe did not finish in time.
    """
    key = _probe_cache_key(endpoint, character)
    cache: dict[str, str] = {}
    if cache_file.is_file():
        try:
            cache = json.loads(cache_file.read_text())
        except ValueError:
            cache = {}
    until = cache.get(key)
    if until and datetime.fromisoformat(until) > now():
        log.info("custom avatar %s verified recently (until %s): no probe", character, until)
        return False
    day = now().strftime("%Y%m%d")
    job_id = f"ap-probe-{key[:16]}-{day}"
    job = BatchSynthesis(
        description=f"avatarpipe deployment probe for {character}",
        input_kind=InputKind.PLAIN_TEXT,
        inputs=[BatchSynthesisInput(content="Hello.")],
        synthesis_config=BatchSynthesisConfig(voice=voice),
        custom_voices=custom_voices or {},
        properties=BatchSynthesisProperties(time_to_live_in_hours=1),
        avatar_config=BatchAvatarConfig(
            talking_avatar_character=character,
            customized=True,
            video_codec=VideoCodec.H264,
            subtitle_type=SubtitleType.NONE,
            bitrate_kbps=500,
        ),
    )
    try:
        seen = api.find_synthesis(job_id) or api.create_synthesis(job_id, job)
    except PermanentServiceError as exc:
        raise DeploymentError(
            f"custom avatar {character!r} was refused by the service ({exc.message}); "
            f"{AvatarStudioSteps}"
        ) from exc
    deadline = clock() + timeout_s
    while seen.status is None or not seen.status.is_final:
        if clock() >= deadline:
            raise WaitTimeoutError(
                f"custom avatar {character!r}: probe job {job_id} not finished after "
                f"{timeout_s:.0f} s",
                continuation_token=job_id,
            )
        sleep(poll_interval_s)
        seen = api.get_synthesis(job_id)
    try:
        if seen.status == Status.FAILED:
            err = seen.properties.error if seen.properties else None
            cause = SynthesisFailedError(
                job_id, code=err.code if err else None, service_message=err.message if err else None
            )
            raise DeploymentError(
                f"custom avatar {character!r} is not usable in this resource "
                f"({cause.message}); {AvatarStudioSteps}"
            ) from cause
    finally:
        api.delete_synthesis(job_id)
    cache[key] = (now() + ttl).isoformat()
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=2))
    os.replace(tmp, cache_file)
    return True
