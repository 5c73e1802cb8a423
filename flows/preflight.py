"""Pre-flight flows: the custom avatar is deployed, the custom voice is usable, teardown after.

These are the steps Microsoft's documentation leaves to people clicking in Speech Studio. Each
is a flow of its own so it shows in the UI as a named step of the main run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import httpx
from prefect import flow, get_run_logger

from avatarpipe.batch.preflight import (
    ensure_custom_voice as check_custom_voice,
)
from avatarpipe.batch.preflight import (
    ensure_emulator_avatar,
    probe_azure_avatar,
    remove_emulator_avatar,
)
from flows.speech import EMULATOR_KEY, SpeechTarget, ensure_rate_limit, open_client, settings

__all__ = ["ensure_avatar_deployment", "ensure_custom_voice", "teardown"]

TeardownPolicy = Literal["keep", "suspend-voice", "remove-avatar", "both"]


def _admin_http(target: SpeechTarget) -> httpx.Client:
    conf = settings()
    key = conf.speech_key.get_secret_value() if conf.speech_key else EMULATOR_KEY
    return httpx.Client(
        base_url=target.endpoint,
        headers={"Ocp-Apim-Subscription-Key": key},
        timeout=httpx.Timeout(30.0, connect=10.0),
    )


@flow(name="ensure-avatar-deployment", flow_run_name="avatar-{character}")
def ensure_avatar_deployment(
    character: str,
    target: SpeechTarget,
    *,
    customized: bool = True,
    probe_voice: str = "en-US-AvaMultilingualNeural",
    probe_custom_voices: dict[str, str] | None = None,
    timeout_s: float = 1800.0,
    poll_interval_s: float = 5.0,
) -> str:
    """Make sure the custom avatar ``character`` can be used by batch jobs.

    On the emulator it is deployed on demand and waited for. On Azure, where no deployment API
    exists, a minimal probe job proves it (cached for a day). Standard avatars skip this.

    Args:
        character: The avatar (custom avatar model name).
        target: Where the Speech service is.
        customized: ``False`` for standard avatars (nothing to check).
        probe_voice: Voice of the Azure probe job.
        probe_custom_voices: ``customVoices`` for the probe, when ``probe_voice`` is custom.
        timeout_s: How long to wait for a deployment or probe.
        poll_interval_s: Seconds between checks.

    Returns:
        ``standard``, ``deployed``, ``probed`` or ``cached``.

    Raises:
        DeploymentError: Unknown avatar, the 10-deployment cap, or a failed deployment/probe,
            with what to do in Speech Studio.
        WaitTimeoutError: It did not become usable in time.
    """
    logger = get_run_logger()
    if not customized:
        logger.info("%s is a standard avatar: no deployment to check", character)
        return "standard"
    if target.backend == "emulator":
        with _admin_http(target) as http:
            ensure_emulator_avatar(
                http, character, timeout_s=timeout_s, poll_interval_s=poll_interval_s
            )
        logger.info("custom avatar %s is deployed", character)
        return "deployed"
    ensure_rate_limit(target.rate_limit_name, target.requests_per_minute)
    cache = Path(settings().output_dir) / ".cache" / "avatar-probes.json"
    with open_client(target) as client:
        ran = probe_azure_avatar(
            client,
            endpoint=target.endpoint,
            character=character,
            voice=probe_voice,
            custom_voices=probe_custom_voices,
            cache_file=cache,
            timeout_s=timeout_s,
            poll_interval_s=max(poll_interval_s, 30.0),
        )
    return "probed" if ran else "cached"


@flow(name="ensure-custom-voice", flow_run_name="voice-{voice_name}")
def ensure_custom_voice(
    voice_name: str,
    deployment_id: str,
    target: SpeechTarget,
    *,
    create_from_model: str | None = None,
    timeout_s: float = 900.0,
    poll_interval_s: float = 10.0,
) -> str:
    """Make sure the CNV endpoint ``deployment_id`` serves ``voice_name`` in this resource.

    Args:
        voice_name: The voice name the script uses.
        deployment_id: The CNV endpoint id.
        target: Where the Speech service is (the same resource as the avatar jobs).
        create_from_model: Create the endpoint from this model id when missing.
        timeout_s: How long to wait for a deploying or resuming endpoint.
        poll_interval_s: Seconds between checks.

    Returns:
        The endpoint's status (``Succeeded``).

    Raises:
        CustomVoiceError: Missing (another resource), failed, or serving another voice name.
        WaitTimeoutError: Not ready in time.
    """
    ensure_rate_limit(target.rate_limit_name, target.requests_per_minute)
    with open_client(target) as client:
        endpoint = check_custom_voice(
            client,
            voice_name,
            deployment_id,
            timeout_s=timeout_s,
            poll_interval_s=poll_interval_s,
            create_from_model=create_from_model,
        )
    get_run_logger().info("custom voice %s: endpoint %s is ready", voice_name, deployment_id)
    return endpoint.status.value if endpoint.status else "Succeeded"


@flow(name="teardown", flow_run_name="teardown-{policy}")
def teardown(
    policy: TeardownPolicy,
    target: SpeechTarget,
    *,
    character: str | None = None,
    deployment_ids: list[str] | None = None,
) -> list[str]:
    """Stop paying for idle hosting after a run.

    Args:
        policy: ``keep``; ``suspend-voice`` (suspend the CNV endpoints); ``remove-avatar``
            (remove the custom avatar deployment: emulator only, Azure has no API for it);
            ``both``.
        target: Where the Speech service is.
        character: The custom avatar to remove.
        deployment_ids: The CNV endpoints to suspend.

    Returns:
        What was done, one line each.

    Raises:
        DeploymentError: Removing the avatar deployment failed.
    """
    done: list[str] = []
    logger = get_run_logger()
    if policy in ("suspend-voice", "both") and deployment_ids:
        with open_client(target) as client:
            for endpoint_id in deployment_ids:
                client.suspend_endpoint(endpoint_id)
                done.append(f"suspended custom voice endpoint {endpoint_id}")
    if policy in ("remove-avatar", "both") and character:
        if target.backend != "emulator":
            logger.warning(
                "Azure has no API to remove custom avatar deployments: delete %s in Speech Studio "
                "(Custom Avatar > Deploy model) to stop paying for hosting",
                character,
            )
        else:
            with _admin_http(target) as http:
                remove_emulator_avatar(http, character)
            done.append(f"removed custom avatar deployment {character}")
    for line in done:
        logger.info(line)
    return done
