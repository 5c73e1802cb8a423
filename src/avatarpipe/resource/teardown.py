"""Stop paying for idle hosting: suspend custom voice endpoints, remove avatar deployments.

A suspended custom voice endpoint is not billed and keeps its id; a custom avatar is billed while
it is deployed. Azure has no API to remove an avatar deployment, so there the step is a
Speech Studio instruction instead of an action.

:func:`stop_hosting` applies a run's ``--teardown`` policy to what the run used;
:func:`stop_idle_hosting` (``avatarpipe teardown``) to everything the resource hosts. Each line
of what was done (or is left to do by hand) is also reported to the progress hub (stage
``teardown``), so the CLI prints it.
"""

from __future__ import annotations

from typing import Literal

from avatarpipe import progress
from avatarpipe.connect import SpeechClients
from avatarpipe.resource.avatars import (
    list_emulator_avatars,
    remove_emulator_avatar,
    studio_steps,
)
from avatarpipe.resource.voices import list_voice_endpoints

__all__ = ["TeardownPolicy", "stop_hosting", "stop_idle_hosting"]

TeardownPolicy = Literal["keep", "suspend-voice", "remove-avatar", "both"]


def stop_hosting(
    clients: SpeechClients,
    policy: TeardownPolicy,
    *,
    character: str | None = None,
    deployment_ids: list[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Apply a teardown policy to the resource ``clients`` reach.

    Args:
        clients: The resource's clients (``clients.admin`` is set on the emulator).
        policy: ``keep``; ``suspend-voice`` (suspend the CNV endpoints); ``remove-avatar``
            (remove the custom avatar deployment: emulator only); ``both``.
        character: The custom avatar to remove.
        deployment_ids: The CNV endpoints to suspend.

    Returns:
        What was done, one line each, and what the operator must still do by hand.

    Raises:
        ServiceError: Suspending an endpoint failed.
        DeploymentError: Removing the avatar deployment failed.
    """
    done: list[str] = []
    todo: list[str] = []
    if policy in ("suspend-voice", "both"):
        for endpoint_id in deployment_ids or []:
            clients.voice.suspend_endpoint(endpoint_id)
            _said(done, f"suspended custom voice endpoint {endpoint_id} (no longer billed)")
    if policy in ("remove-avatar", "both") and character:
        if clients.admin is None:
            _said(todo, _azure_avatar_line(character))
        elif remove_emulator_avatar(clients.admin, character):
            _said(done, f"removed custom avatar deployment {character} (no longer billed)")
        else:
            _said(done, f"custom avatar {character} was not deployed: nothing to remove")
    return done, todo


def _said(lines: list[str], line: str) -> None:
    lines.append(line)
    progress.report("teardown", "", line)


def _azure_avatar_line(character: str) -> str:
    steps = " ".join(studio_steps("remove", character)[1:3])
    return (
        f"Azure has no API to remove custom avatar deployments: remove {character} by hand "
        f"to stop paying for its hosting: in Speech Studio, {steps[0].lower()}{steps[1:]}"
    )


def stop_idle_hosting(
    clients: SpeechClients, *, voices: bool = True, avatars: bool = True
) -> tuple[list[str], list[str]]:
    """Stop everything the resource hosts: suspend its running voice endpoints, remove avatars.

    Args:
        clients: The resource's clients (``clients.admin`` is set on the emulator).
        voices: Suspend every running (``Succeeded``) custom voice endpoint.
        avatars: Remove every custom avatar deployment (emulator); on Azure, where avatars can
            be neither listed nor removed through an API, say how to do it in Speech Studio.

    Returns:
        What was done, one line each, and what the operator must still do by hand.

    Raises:
        ServiceError: A request failed (``AuthenticationError`` for a wrong key).
        DeploymentError: Removing an avatar deployment failed.
    """
    done: list[str] = []
    todo: list[str] = []
    if voices:
        running = [v for v in list_voice_endpoints(clients.voice) if v.status == "Succeeded"]
        for endpoint in running:
            clients.voice.suspend_endpoint(endpoint.id)
            _said(
                done,
                f"suspended custom voice endpoint {endpoint.id} ({endpoint.voice_name}): "
                "no longer billed",
            )
        if not running:
            _said(done, "no custom voice endpoint is running: nothing to suspend")
    if avatars:
        if clients.admin is None:
            _said(todo, _azure_avatar_line("each deployed custom avatar"))
        else:
            hosted = [a for a in list_emulator_avatars(clients.admin) if a.hosted]
            for avatar in hosted:
                remove_emulator_avatar(clients.admin, avatar.name)
                _said(done, f"removed custom avatar deployment {avatar.name}: no longer billed")
            if not hosted:
                _said(done, "no custom avatar is deployed: nothing to remove")
    return done, todo
