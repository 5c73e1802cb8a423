"""``avatarpipe doctor``: is this setup right? One check per concern, each with its fix.

:func:`diagnose` runs the checks against one Speech resource (Azure or an emulator) and returns
:class:`Check` results; the CLI prints them. A check never raises: a failure is a result. Only
``probe=True`` spends money (one probe job per custom avatar on Azure); everything else reads.
The key or token is never part of a result.

The checks, in order: the endpoint answers; the key (or token) is accepted; the service accepts
both api-versions; the region offers batch avatar synthesis; the custom voice endpoints the
scripts name (or all of them); the custom avatars the scripts name (on Azure only with
``probe``); the blob container is writable (when one is configured); ffmpeg is present; the
Prefect API answers (when ``PREFECT_API_URL`` is set); the request budget's Prefect limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from avatarpipe.connect import REGIONAL_SUFFIX, SpeechClients
from avatarpipe.errors import (
    AuthenticationError,
    AvatarpipeError,
    HttpResponseError,
    ServiceError,
    ServiceRequestError,
    StorageError,
)
from avatarpipe.resource.avatars import (
    PROBE_COST,
    check_emulator_avatar,
    list_emulator_avatars,
    probe_azure_avatar,
)
from avatarpipe.resource.voices import check_voice_endpoint, list_voice_endpoints
from avatarpipe.settings import Settings
from avatarpipe.speech.ratelimit import RequestPace, per_minute_of_limit

__all__ = ["BATCH_AVATAR_REGIONS", "RATE_LIMIT_NAME", "Check", "Probe", "diagnose"]

BATCH_AVATAR_REGIONS = (
    "eastus2",
    "northeurope",
    "southcentralus",
    "southeastasia",
    "swedencentral",
    "westeurope",
    "westus2",
)
"""Regions that offer batch avatar synthesis (Microsoft's region list, text to speech avatar)."""

RATE_LIMIT_NAME = "avatarpipe-speech-requests"
"""The Prefect global concurrency limit of the request budget (``flows.connections.SpeechTarget``
names it for the runs; a test keeps the two equal, so the doctor need not import Prefect)."""

Status = Literal["ok", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    """The result of one check.

    Attributes:
        name: What was checked (``endpoint``, ``key``, ``voice ContosoNeural``...).
        status: ``ok``, ``fail``, or ``skip`` (not configured, or not checkable: not a failure).
        detail: What was found.
        fix: How to fix it (for a failure), or how to check it (for a skip).
    """

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def passed(self) -> bool:
        """Whether it does not fail the setup."""
        return self.status != "fail"


@dataclass(frozen=True)
class Probe:
    """What a custom avatar probe on Azure needs (``diagnose(..., probe=Probe(...))``).

    Attributes:
        voice: The voice the probe speaks with.
        custom_voices: ``customVoices`` of the probe, when ``voice`` is custom.
        cache_file: Where successful probes are remembered (24 hours).
    """

    voice: str
    custom_voices: dict[str, str] | None
    cache_file: Path


_KEY_FIX = (
    "set AVATARPIPE_SPEECH_KEY to key 1 or 2 of this resource (Azure portal > the Speech "
    "resource > Keys and Endpoint), or unset it to sign in with Entra ID on the custom-domain "
    "endpoint"
)


def _endpoint_and_key(
    clients: SpeechClients, conf: Settings, where: str
) -> tuple[Check, Check, Check]:
    """Endpoint, key and batch api-version from one list request (``maxpagesize=1``)."""
    version = conf.batch_avatar_api_version
    try:
        clients.batch.list_syntheses_page(maxpagesize=1)
    except ServiceRequestError as exc:
        reason = exc.message.rsplit(": ", 1)[-1]
        return (
            Check(
                "endpoint",
                "fail",
                f"{where} does not answer ({reason})",
                "check AVATARPIPE_SPEECH_ENDPOINT: https://<region>.api.cognitive.microsoft.com "
                "or https://<name>.cognitiveservices.azure.com, and the network (proxy, firewall)",
            ),
            Check("key", "skip", "not checked: the endpoint does not answer"),
            Check("api-versions", "skip", "not checked: the endpoint does not answer"),
        )
    except AuthenticationError as exc:
        return (
            Check("endpoint", "ok", f"{where} answers"),
            Check(
                "key",
                "fail",
                f"the service refused the credentials ({exc.status_code}: "
                f"{exc.service_message or 'access denied'})",
                _KEY_FIX,
            ),
            Check("api-versions", "skip", "not checked: the credentials were refused"),
        )
    except HttpResponseError as exc:
        endpoint = Check("endpoint", "ok", f"{where} answers")
        if exc.status_code == 400 and "api-version" in (exc.service_message or exc.message):
            return (
                endpoint,
                Check("key", "skip", "not checked: the api-version was refused"),
                Check(
                    "api-versions",
                    "fail",
                    f"batch avatar api-version {version}: {exc.service_message}",
                    "set AVATARPIPE_BATCH_AVATAR_API_VERSION to 2024-08-01 (or unset it)",
                ),
            )
        return (
            Check(
                "endpoint",
                "fail",
                f"{where} answers, but not as a Speech resource ({exc.message})",
                "set AVATARPIPE_SPEECH_ENDPOINT to the Speech resource's endpoint (Azure portal > "
                "the Speech resource > Keys and Endpoint)",
            ),
            Check("key", "skip", "not checked: the endpoint is not a Speech resource"),
            Check("api-versions", "skip", "not checked: the endpoint is not a Speech resource"),
        )
    except ServiceError as exc:
        return (
            Check("endpoint", "fail", exc.message, "check AVATARPIPE_SPEECH_ENDPOINT"),
            Check("key", "skip", "not checked"),
            Check("api-versions", "skip", "not checked"),
        )
    return (
        Check("endpoint", "ok", f"{where} answers"),
        Check("key", "ok", "accepted (its value is never printed)"),
        _voice_api_version(clients, conf),
    )


def _voice_api_version(clients: SpeechClients, conf: Settings) -> Check:
    versions = (
        f"batch avatar {conf.batch_avatar_api_version}, custom voice "
        f"{conf.custom_voice_api_version}"
    )
    try:
        next(iter(clients.voice.list_projects()), None)
    except HttpResponseError as exc:
        if exc.status_code == 400 and "api-version" in (exc.service_message or exc.message):
            return Check(
                "api-versions",
                "fail",
                f"custom voice api-version {conf.custom_voice_api_version}: {exc.service_message}",
                "set AVATARPIPE_CUSTOM_VOICE_API_VERSION to 2026-01-01 (or unset it)",
            )
        return Check("api-versions", "fail", exc.message, "see the error above")
    except ServiceError as exc:
        return Check("api-versions", "fail", exc.message, "see the error above")
    return Check("api-versions", "ok", f"{versions}: both accepted")


def _region(conf: Settings, endpoint: str, backend: str) -> Check:
    if backend == "emulator":
        return Check("region", "ok", "the emulator: no region")
    host = httpx.URL(endpoint).host.lower()
    regions = ", ".join(BATCH_AVATAR_REGIONS)
    if host.endswith(REGIONAL_SUFFIX):
        region = host.removesuffix(REGIONAL_SUFFIX)
        if region in BATCH_AVATAR_REGIONS:
            return Check("region", "ok", f"{region} offers batch avatar synthesis")
        return Check(
            "region",
            "fail",
            f"{region} does not offer batch avatar synthesis (jobs stay NotStarted)",
            f"use a Speech resource in one of {regions}",
        )
    return Check(
        "region",
        "skip",
        f"{host} is a custom domain: its region is not in the URL",
        f"make sure the resource is in one of {regions} (Azure portal > Overview > Location)",
    )


def _voices(clients: SpeechClients, voices: Iterable[tuple[str, str]]) -> list[Check]:
    wanted = sorted(set(voices))
    if not wanted:
        try:
            endpoints = list_voice_endpoints(clients.voice)
        except AvatarpipeError as exc:
            return [Check("voices", "fail", exc.message, "see the error above")]
        running = sum(1 for e in endpoints if e.status == "Succeeded")
        return [
            Check(
                "voices",
                "ok",
                f"{len(endpoints)} custom voice endpoint(s), {running} running (billed); name "
                "scripts (`avatarpipe doctor SCRIPT...`) to check theirs",
            )
        ]
    checks = []
    for name, deployment_id in wanted:
        try:
            state = check_voice_endpoint(clients.voice, deployment_id, name)
        except AvatarpipeError as exc:
            checks.append(
                Check(
                    f"voice {name}",
                    "fail",
                    exc.message,
                    "fix the script's voice.name or voice.deployment_id (`avatarpipe voices "
                    "list` shows this resource's)",
                )
            )
            continue
        checks.append(
            Check(f"voice {name}", "ok", f"endpoint {deployment_id}: {state.status}, {state.note}")
        )
    return checks


def _avatars(
    clients: SpeechClients,
    conf: Settings,
    endpoint: str,
    characters: Iterable[str],
    probe: Probe | None,
) -> list[Check]:
    wanted = sorted(set(characters))
    admin = clients.admin
    if admin is not None and not wanted:
        try:
            avatars = list_emulator_avatars(admin)
        except AvatarpipeError as exc:
            return [Check("avatars", "fail", exc.message, "see the error above")]
        names = ", ".join(a.name for a in avatars) or "none"
        return [Check("avatars", "ok", f"custom avatars: {names}")]
    if admin is None and (probe is None or not wanted):
        return [
            Check(
                "avatars",
                "skip",
                "Azure has no API to list or check custom avatars",
                f"`avatarpipe doctor SCRIPT --probe` proves the scripts' avatars with a probe "
                f"job each ({PROBE_COST})",
            )
        ]
    checks = []
    for name in wanted:
        try:
            if admin is not None:
                state = check_emulator_avatar(admin, name)
                detail = f"exists, deployment {state.deployment or 'none (a run deploys it)'}"
            else:
                assert probe is not None
                ran = probe_azure_avatar(
                    clients.batch,
                    endpoint=endpoint,
                    character=name,
                    voice=probe.voice,
                    custom_voices=probe.custom_voices,
                    cache_file=probe.cache_file,
                    timeout_s=conf.wait_timeout_s,
                    poll_interval_s=max(conf.poll_interval_s, 30.0),
                )
                detail = "usable: " + ("the probe job succeeded" if ran else "probed recently")
        except AvatarpipeError as exc:
            checks.append(
                Check(
                    f"avatar {name}",
                    "fail",
                    exc.message,
                    "fix the script's avatar.character, or deploy it (`avatarpipe avatars "
                    f"deploy {name}`)",
                )
            )
            continue
        checks.append(Check(f"avatar {name}", "ok", detail))
    return checks


_BLOB_MARK = ".avatarpipe/doctor-check.txt"


def _answers(url: str) -> str | None:
    """``None`` when ``url``'s server answers HTTP at all (any status), else why not."""
    try:
        httpx.head(url, timeout=5.0)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return None


def _blob(conf: Settings) -> Check:
    from avatarpipe.storage.blob import store_from_settings

    try:
        store = store_from_settings(conf)
        if store is None:
            return Check(
                "blob",
                "skip",
                "no container configured: videos stay in the output folder",
                "set AVATARPIPE_BLOB_CONNECTION_STRING or AVATARPIPE_BLOB_ACCOUNT_URL to publish",
            )
        answers = _answers(store.blob_url(_BLOB_MARK))
        if answers is not None:  # before the SDK, which retries a dead address for a minute
            raise StorageError(f"the storage account does not answer ({answers})")
        store.ensure_container()  # as a run does
        store.write_bytes(
            _BLOB_MARK,
            f"written by avatarpipe doctor at {time.time():.0f}\n".encode(),
            content_type="text/plain",
        )
    except AvatarpipeError as exc:
        return Check(
            "blob",
            "fail",
            f"container {conf.blob_container}: {exc.message}",
            "check AVATARPIPE_BLOB_CONNECTION_STRING (or the account URL and its SAS, which must "
            "allow writes) and that the storage account answers",
        )
    return Check("blob", "ok", f"container {conf.blob_container} is writable")


def _ffmpeg() -> Check:
    from avatarpipe.media.ffmpeg import ffmpeg_exe

    try:
        return Check("ffmpeg", "ok", ffmpeg_exe())
    except AvatarpipeError as exc:
        return Check(
            "ffmpeg",
            "fail",
            exc.message,
            "install ffmpeg on PATH, or reinstall avatarpipe (the imageio-ffmpeg wheel has one)",
        )


def _prefect(api_url: str | None, limit_name: str, conf: Settings) -> list[Check]:
    rpm = conf.requests_per_minute
    if not api_url:
        return [
            Check(
                "prefect",
                "ok",
                "PREFECT_API_URL is not set: each run starts a local Prefect server and stops it "
                "(a first start migrates its database: 20 to 40 s)",
            ),
            Check(
                "budget",
                "ok",
                f"each run's local server creates the limit {limit_name} at {rpm:g} requests a "
                "minute (AVATARPIPE_REQUESTS_PER_MINUTE)",
            ),
        ]
    base = api_url.rstrip("/")
    try:
        with httpx.Client(timeout=10.0) as http:
            http.get(f"{base}/health").raise_for_status()
            answer = http.get(f"{base}/v2/concurrency_limits/{limit_name}")
    except httpx.HTTPError as exc:
        return [
            Check(
                "prefect",
                "fail",
                f"{base} does not answer ({type(exc).__name__})",
                "start the server (`prefect server start`), fix PREFECT_API_URL, or unset it "
                "(runs then start a local one)",
            ),
            Check("budget", "skip", "not checked: the Prefect API does not answer"),
        ]
    prefect = Check("prefect", "ok", f"{base} answers")
    if answer.status_code == 404:
        return [
            prefect,
            Check(
                "budget",
                "ok",
                f"the limit {limit_name} does not exist yet: the first run creates it at "
                f"{rpm:g} requests a minute (AVATARPIPE_REQUESTS_PER_MINUTE)",
            ),
        ]
    try:
        answer.raise_for_status()
        data = answer.json()
        slots, decay = int(data["limit"]), float(data.get("slot_decay_per_second") or 0.0)
        active, on = int(data.get("active_slots", 0)), bool(data.get("active", True))
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return [prefect, Check("budget", "fail", f"unreadable limit {limit_name}: {exc}")]
    per_minute = per_minute_of_limit(slots, decay)
    detail = (
        f"{limit_name}: {per_minute:g} requests a minute ({slots} slot, {active} in use, "
        f"{'active' if on else 'INACTIVE: runs are not throttled'})"
    )
    if not RequestPace(rpm).matches(slots, decay):
        detail += f"; the next run sets it to AVATARPIPE_REQUESTS_PER_MINUTE ({rpm:g})"
    return [prefect, Check("budget", "ok", detail)]


def diagnose(
    clients: SpeechClients,
    conf: Settings,
    *,
    endpoint: str,
    backend: str,
    voices: Iterable[tuple[str, str]] = (),
    characters: Iterable[str] = (),
    probe: Probe | None = None,
    prefect_api_url: str | None = None,
    rate_limit_name: str = RATE_LIMIT_NAME,
    progress: Callable[[Check], None] | None = None,
) -> list[Check]:
    """Run every check against the resource ``clients`` reach; never raises for a failure.

    Args:
        clients: The resource's clients (short retries: an unreachable endpoint fails fast).
        conf: The settings (blob, api-versions, budget).
        endpoint: The resource's endpoint (the region check, the probe cache key).
        backend: ``azure`` or ``emulator``.
        voices: ``(voice name, deployment id)`` pairs the scripts use; none: list all.
        characters: The custom avatars the scripts use; none: list all (emulator).
        probe: On Azure, prove ``characters`` with a paid probe job each.
        prefect_api_url: ``PREFECT_API_URL``, when set.
        rate_limit_name: The Prefect global concurrency limit of the request budget.
        progress: Called with each result as soon as it is known.

    Returns:
        The results, in order; the setup is right when every one ``passed``.
    """
    results: list[Check] = []

    def add(*checks: Check) -> None:
        for check in checks:
            results.append(check)
            if progress is not None:
                progress(check)

    add(*_endpoint_and_key(clients, conf, endpoint))
    add(_region(conf, endpoint, backend))
    if results[1].status == "ok":
        add(*_voices(clients, voices))
        add(*_avatars(clients, conf, endpoint, characters, probe))
    else:
        unchecked = "not checked: the resource cannot be used (see above)"
        add(Check("voices", "skip", unchecked), Check("avatars", "skip", unchecked))
    add(_blob(conf))
    add(_ffmpeg())
    add(*_prefect(prefect_api_url, rate_limit_name, conf))
    return results
