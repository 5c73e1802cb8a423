"""Custom avatars: deployed before any job is paid for.

Microsoft's "Deploy your custom text to speech avatar model as an endpoint" page asks people to
click through Speech Studio; these functions do it (or check it):

* :func:`ensure_emulator_avatar`: on the emulator, the custom avatar is deployed (on demand),
  through its admin API (:class:`~avatarpipe.speech.emulator_admin.EmulatorAdminClient`).
* :func:`probe_azure_avatar`: on Azure, where deploying avatars has no public API, a minimal
  probe job proves the avatar is usable; a success is cached with an expiry.
* :func:`list_emulator_avatars`, :func:`check_emulator_avatar`, :func:`remove_emulator_avatar`:
  what ``avatarpipe avatars`` does on the emulator; :func:`studio_steps` what it prints for Azure.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from avatarpipe.batch.wait import wait_until
from avatarpipe.errors import (
    AuthenticationError,
    DeploymentError,
    PermanentServiceError,
    ServiceError,
    SynthesisFailedError,
    WaitTimeoutError,
)
from avatarpipe.resource.names import holds
from avatarpipe.speech.emulator_admin import EmulatorAdminClient
from avatarpipe.speech.models import (
    BatchAvatarConfig,
    BatchSynthesis,
    BatchSynthesisConfig,
    BatchSynthesisInput,
    BatchSynthesisProperties,
    InputKind,
    Status,
    SubtitleType,
    VideoCodec,
)

__all__ = [
    "PROBE_COST",
    "AvatarCheck",
    "AvatarState",
    "AvatarStudioSteps",
    "ProbeApi",
    "check_emulator_avatar",
    "ensure_avatar",
    "ensure_emulator_avatar",
    "list_emulator_avatars",
    "probe_azure_avatar",
    "remove_emulator_avatar",
    "studio_steps",
]

log = logging.getLogger(__name__)

AvatarStudioSteps = (
    "deploy it in Speech Studio: Custom Avatar > your project > Deploy model, wait until the "
    "deployment shows Succeeded (each Speech resource holds at most 10 custom avatar "
    "endpoints), and use the same Speech resource (endpoint and key) here"
)


PROBE_COST = (
    "one batch job with a two-word input (about one second of avatar video, billed at your "
    "resource's custom avatar rate, plus its few characters of speech) and a handful of "
    "requests of the request budget; the job is deleted afterwards and a success is "
    "remembered for 24 hours"
)
"""What a probe of a custom avatar on Azure costs (said before one runs)."""

_STUDIO = "Sign in to Speech Studio (https://speech.microsoft.com) and select this Speech resource"


def studio_steps(action: Literal["deploy", "remove"], name: str) -> list[str]:
    """The Speech Studio steps that deploy or remove a custom avatar (Azure has no API for it).

    Args:
        action: ``deploy`` or ``remove``.
        name: The custom avatar model name.

    Returns:
        The steps, in order.
    """
    if action == "deploy":
        return [
            f"{_STUDIO} (top right).",
            "Open Custom Avatar, then your project.",
            f"Train model: {name} must have finished training (its name is what scripts call "
            "the avatar).",
            f"Deploy model > Deploy model, choose {name}, confirm.",
            "Wait until its status is Succeeded: it is hosted, usable by batch jobs, and billed "
            "while it stays deployed (at most 10 custom avatar endpoints per resource).",
            f"Then `avatarpipe avatars check {name} --yes` proves it with a probe job.",
        ]
    return [
        f"{_STUDIO} (top right).",
        "Open Custom Avatar, then your project, then Deploy model.",
        f"Select the deployment of {name} (status Succeeded means it is being hosted and "
        "billed), then Delete.",
        "The trained model stays: deploy it again before the next batch.",
    ]


@dataclass(frozen=True)
class AvatarState:
    """A custom avatar of the resource and its deployment.

    Attributes:
        name: The custom avatar model name (``talkingAvatarCharacter``).
        deployment: ``NotStarted``, ``Running``, ``Succeeded`` (hosted and billed) or
            ``Failed``; ``None`` when it is not deployed.
    """

    name: str
    deployment: str | None

    @property
    def hosted(self) -> bool:
        """Whether it is deployed (or deploying), and so billed."""
        return self.deployment in ("NotStarted", "Running", "Succeeded")


@contextlib.contextmanager
def _key_checked() -> Iterator[None]:
    """Turn the emulator's 401/403 into an :class:`AuthenticationError` that names the key."""
    try:
        yield
    except ServiceError as exc:
        if exc.status_code in (401, 403):
            raise AuthenticationError(
                f"{exc.message}; check AVATARPIPE_SPEECH_KEY", status_code=exc.status_code
            ) from None
        raise


def _status(avatar: dict[str, Any]) -> str | None:
    status = (avatar.get("deployment") or {}).get("status")
    return str(status) if status is not None else None


@_key_checked()
def ensure_emulator_avatar(
    admin: EmulatorAdminClient,
    name: str,
    *,
    timeout_s: float = 600.0,
    poll_interval_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Make sure a custom avatar is deployed on the emulator, deploying it when missing.

    Args:
        admin: The emulator's admin client.
        name: The custom avatar model name (``talkingAvatarCharacter``).
        timeout_s: How long to wait for the deployment.
        poll_interval_s: Seconds between the first status checks (then a growing back-off).
        sleep: Injected for tests.
        clock: Injected for tests.

    Returns:
        The emulator's view of the avatar (``deployment.status == "Succeeded"``).

    Raises:
        DeploymentError: Unknown model, the 10-deployment cap, or a failed deployment.
        WaitTimeoutError: The deployment did not finish in time.
        AuthenticationError: The emulator does not accept the key.
        ServiceError: The emulator could not be reached or failed.
    """
    avatar = admin.get_avatar(name)
    if avatar is None:
        raise _unknown(admin, name)
    status = _status(avatar)
    if status == "Succeeded":
        return avatar
    if status in (None, "Failed", "Deleted"):
        log.info("custom avatar %s is not deployed: deploying it", name)
        try:
            admin.deploy_avatar(name)
        except ServiceError as exc:
            if exc.status_code is None or exc.status_code in (401, 403) or exc.status_code >= 500:
                raise
            message = exc.service_message or exc.message
            raise DeploymentError(
                f"custom avatar {name!r} could not be deployed: {message}"
            ) from None

    def deployed() -> dict[str, Any] | None:
        nonlocal status
        seen = admin.get_avatar(name) or {}
        status = _status(seen)
        if status == "Failed":
            raise DeploymentError(
                f"custom avatar {name!r}: the deployment failed; {AvatarStudioSteps}"
            )
        return seen if status == "Succeeded" else None

    def timed_out() -> WaitTimeoutError:
        return WaitTimeoutError(
            f"custom avatar {name!r}: deployment still {status} after {timeout_s:.0f} s"
        )

    return wait_until(
        deployed,
        interval=poll_interval_s,
        timeout=timeout_s,
        timed_out=timed_out,
        sleep=sleep,
        clock=clock,
    )


def _unknown(admin: EmulatorAdminClient, name: str) -> DeploymentError:
    """The error for a custom avatar the resource does not hold, naming those it does."""
    held = holds(name, (a["name"] for a in admin.list_avatars()), "custom avatars")
    return DeploymentError(
        f"custom avatar {name!r} does not exist in this Speech resource ({held}): fix "
        "avatar.character, or train it in Speech Studio (Custom Avatar > your project > Train "
        "model)"
    )


@_key_checked()
def list_emulator_avatars(admin: EmulatorAdminClient) -> list[AvatarState]:
    """The custom avatars of the emulated resource, with their deployments.

    Raises:
        AuthenticationError: The emulator does not accept the key.
        ServiceError: The emulator could not be reached or failed.
    """
    return sorted(
        (AvatarState(str(a["name"]), _status(a)) for a in admin.list_avatars()),
        key=lambda a: a.name,
    )


@_key_checked()
def check_emulator_avatar(admin: EmulatorAdminClient, name: str) -> AvatarState:
    """One custom avatar of the emulated resource (it exists; deployed or not).

    Raises:
        DeploymentError: The resource holds no such avatar (the message names those it holds).
        AuthenticationError: The emulator does not accept the key.
        ServiceError: The emulator could not be reached or failed.
    """
    avatar = admin.get_avatar(name)
    if avatar is None:
        raise _unknown(admin, name)
    return AvatarState(str(avatar["name"]), _status(avatar))


@_key_checked()
def remove_emulator_avatar(admin: EmulatorAdminClient, name: str) -> bool:
    """Remove a custom avatar's deployment on the emulator (hosting is billed while deployed).

    Returns:
        ``False`` when the avatar was not deployed (nothing to remove).

    Raises:
        DeploymentError: The resource holds no such avatar, or the emulator refused.
        AuthenticationError: The emulator does not accept the key.
    """
    try:
        removed = admin.remove_deployment(name)
    except ServiceError as exc:
        if exc.status_code in (401, 403):
            raise
        raise DeploymentError(
            f"custom avatar {name!r}: removal failed: {exc.service_message or exc.message}"
        ) from None
    if not removed and admin.get_avatar(name) is None:
        raise _unknown(admin, name)
    return removed


# ------------------------------------------------------------------ Azure avatars


class ProbeApi(Protocol):
    """The part of the batch avatar client the Azure avatar probe uses."""

    def find_synthesis(self, job_id: str) -> BatchSynthesis | None: ...  # noqa: D102

    def create_synthesis(  # noqa: D102
        self, job_id: str, job: BatchSynthesis, *, operation_id: str | None = None
    ) -> BatchSynthesis: ...

    def get_synthesis(self, job_id: str) -> BatchSynthesis: ...  # noqa: D102

    def delete_synthesis(self, job_id: str) -> None: ...  # noqa: D102


def _probe_cache_key(endpoint: str, character: str) -> str:
    return hashlib.sha256(f"{endpoint}|{character}".encode()).hexdigest()[:32]


def _read_cache(cache_file: Path) -> dict[str, str]:
    """Successful probes: cache key -> trusted until (ISO time); empty when unreadable."""
    if not cache_file.is_file():
        return {}
    try:
        cache: dict[str, str] = json.loads(cache_file.read_text())
    except ValueError:
        return {}
    return cache


def _write_cache(cache_file: Path, cache: dict[str, str]) -> None:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=2))
    os.replace(tmp, cache_file)


def _probe_job(character: str, voice: str, custom_voices: dict[str, str] | None) -> BatchSynthesis:
    """The smallest job that proves ``character`` is usable: two words, no subtitles."""
    return BatchSynthesis(
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
        api: The batch avatar client.
        endpoint: The resource endpoint (part of the cache key; no secret).
        character: The custom avatar model name.
        voice: A voice to speak the probe with.
        custom_voices: ``customVoices`` for the probe (when ``voice`` is a custom one).
        cache_file: JSON file remembering successful probes.
        ttl: How long a success stays trusted.
        timeout_s: How long to wait for the probe job.
        poll_interval_s: Seconds between the first polls (then a growing back-off).
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
    cache = _read_cache(cache_file)
    until = cache.get(key)
    if until and datetime.fromisoformat(until) > now():
        log.info("custom avatar %s verified recently (until %s): no probe", character, until)
        return False
    day = now().strftime("%Y%m%d")
    job_id = f"ap-probe-{key[:16]}-{day}"
    job = _probe_job(character, voice, custom_voices)
    seen: BatchSynthesis | None
    try:
        seen = api.find_synthesis(job_id) or api.create_synthesis(job_id, job)
    except PermanentServiceError as exc:
        raise DeploymentError(
            f"custom avatar {character!r} was refused by the service ({exc.message}); "
            f"{AvatarStudioSteps}"
        ) from exc

    def final() -> BatchSynthesis | None:
        nonlocal seen
        if seen is None:
            seen = api.get_synthesis(job_id)
        view, seen = seen, None
        return view if view.status is not None and view.status.is_final else None

    def timed_out() -> WaitTimeoutError:
        return WaitTimeoutError(
            f"custom avatar {character!r}: probe job {job_id} not finished after {timeout_s:.0f} s",
            continuation_token=job_id,
        )

    done = wait_until(
        final,
        interval=poll_interval_s,
        timeout=timeout_s,
        timed_out=timed_out,
        sleep=sleep,
        clock=clock,
    )
    try:
        if done.status == Status.FAILED:
            err = done.properties.error if done.properties else None
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
    _write_cache(cache_file, cache)
    return True


AvatarCheck = Literal["deployed", "probed", "cached"]


def ensure_avatar(
    api: ProbeApi,
    admin: EmulatorAdminClient | None,
    character: str,
    *,
    endpoint: str,
    probe_voice: str,
    probe_custom_voices: dict[str, str] | None,
    cache_file: Path,
    timeout_s: float,
    poll_interval_s: float,
) -> AvatarCheck:
    """Make sure the custom avatar ``character`` can be used by batch jobs of this resource.

    On the emulator (``admin`` given) it is deployed on demand and waited for. On Azure, where
    no deployment API exists, a minimal probe job proves it (a success is cached for a day).

    Args:
        api: The batch avatar client (the probe's jobs).
        admin: The emulator's admin client; ``None`` on Azure.
        character: The custom avatar model name.
        endpoint: The resource endpoint (part of the probe's cache key).
        probe_voice: Voice of the Azure probe job.
        probe_custom_voices: ``customVoices`` for the probe, when ``probe_voice`` is custom.
        cache_file: JSON file remembering successful probes.
        timeout_s: How long to wait for a deployment or probe.
        poll_interval_s: Seconds between the first checks (at least 30 s for a probe).

    Returns:
        ``deployed`` (emulator), ``probed`` (a probe ran) or ``cached`` (a recent probe passed).

    Raises:
        DeploymentError: Unknown avatar, the 10-deployment cap, or a failed deployment/probe,
            with what to do in Speech Studio.
        WaitTimeoutError: It did not become usable in time.
    """
    if admin is not None:
        ensure_emulator_avatar(
            admin, character, timeout_s=timeout_s, poll_interval_s=poll_interval_s
        )
        return "deployed"
    ran = probe_azure_avatar(
        api,
        endpoint=endpoint,
        character=character,
        voice=probe_voice,
        custom_voices=probe_custom_voices,
        cache_file=cache_file,
        timeout_s=timeout_s,
        poll_interval_s=max(poll_interval_s, 30.0),
    )
    return "probed" if ran else "cached"
