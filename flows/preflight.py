"""Pre-flight flows: the custom avatar is deployed, the custom voice is usable, teardown after.

These are the steps Microsoft's documentation leaves to people clicking in Speech Studio. Each
is a flow of its own so it shows in the UI as a named step of the main run.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from avatarpipe.resource.avatars import ensure_avatar
from avatarpipe.resource.teardown import TeardownPolicy, stop_hosting
from avatarpipe.resource.voices import ensure_custom_voice as check_custom_voice
from flows.connections import SpeechTarget, ensure_rate_limit, open_clients, settings

__all__ = ["TeardownPolicy", "ensure_avatar_deployment", "ensure_custom_voice", "teardown"]


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
    if target.backend != "emulator":
        ensure_rate_limit(target.rate_limit_name, target.requests_per_minute)
    cache = Path(settings().output_dir) / ".cache" / "avatar-probes.json"
    with open_clients(target) as clients:
        result = ensure_avatar(
            clients.batch,
            clients.admin,
            character,
            endpoint=target.endpoint,
            probe_voice=probe_voice,
            probe_custom_voices=probe_custom_voices,
            cache_file=cache,
            timeout_s=timeout_s,
            poll_interval_s=poll_interval_s,
        )
    if result == "deployed":
        logger.info("custom avatar %s is deployed", character)
    return result


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
    with open_clients(target) as clients:
        endpoint = check_custom_voice(
            clients.voice,
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
    """Stop paying for idle hosting after a run (see :func:`stop_hosting` for the policies).

    Returns:
        What was done, one line each.

    Raises:
        DeploymentError: Removing the avatar deployment failed.
    """
    logger = get_run_logger()
    with open_clients(target) as clients:
        done, todo = stop_hosting(
            clients, policy, character=character, deployment_ids=deployment_ids
        )
    for line in todo:
        logger.warning(line)
    for line in done:
        logger.info(line)
    return done
