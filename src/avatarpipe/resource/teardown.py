"""Stop paying for idle hosting: suspend custom voice endpoints, remove avatar deployments.

A suspended custom voice endpoint is not billed and keeps its id; a custom avatar is billed while
it is deployed. Azure has no API to remove an avatar deployment, so there the step is a
Speech Studio instruction instead of an action.
"""

from __future__ import annotations

from typing import Literal

from avatarpipe.connect import SpeechClients
from avatarpipe.resource.avatars import remove_emulator_avatar

__all__ = ["TeardownPolicy", "stop_hosting"]

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
            done.append(f"suspended custom voice endpoint {endpoint_id}")
    if policy in ("remove-avatar", "both") and character:
        if clients.admin is None:
            todo.append(
                f"Azure has no API to remove custom avatar deployments: delete {character} in "
                "Speech Studio (Custom Avatar > Deploy model) to stop paying for hosting"
            )
        else:
            remove_emulator_avatar(clients.admin, character)
            done.append(f"removed custom avatar deployment {character}")
    return done, todo
