"""Custom avatar models and their deployments (admin only: Azure has no API for them).

A deployment goes ``NotStarted`` -> ``Running`` -> ``Succeeded`` (or ``Failed``, an injected
fault) over ``avatar_deploy_s``; a resource holds at most ``max_avatar_deployments`` (10).
"""

from __future__ import annotations

import re
from typing import Any

from avatarpipe.emulator.apierror import ApiError, bad_request, not_found
from avatarpipe.emulator.core import ResourceCore, iso
from avatarpipe.emulator.store import AvatarModel

__all__ = ["AVATAR_CAP_MESSAGE", "Avatars"]

AVATAR_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
AVATAR_CAP_MESSAGE = (
    "Each Speech resource can have at most {cap} custom avatar endpoints; remove one in "
    "Speech Studio before deploying another."
)


class Avatars:
    """The custom avatars of one emulated resource."""

    def __init__(self, core: ResourceCore) -> None:
        """Create over the resource's core."""
        self.core = core

    @staticmethod
    def view(model: AvatarModel) -> dict[str, Any]:
        """Return a custom avatar model with its deployment."""
        deployment = None
        if model.deploy_status is not None:
            deployment = {
                "status": model.deploy_status,
                "requestedDateTime": iso(model.deploy_requested or model.created),
            }
        return {"name": model.name, "createdDateTime": iso(model.created), "deployment": deployment}

    def list_views(self) -> list[dict[str, Any]]:
        """Every custom avatar model, with its deployment."""
        return [self.view(m) for m in self.core.store.list_avatars()]

    def get(self, name: str) -> dict[str, Any]:
        """One custom avatar model.

        Raises:
            ApiError: 404 when it does not exist.
        """
        model = self.core.store.get_avatar(name)
        if model is None:
            raise _missing(name)
        return self.view(model)

    def delete(self, name: str) -> None:
        """Delete a custom avatar model.

        Raises:
            ApiError: 404 when it does not exist.
        """
        if not self.core.store.delete_avatar(name):
            raise _missing(name)

    def create(self, name: str, deployed: bool = False) -> tuple[dict[str, Any], bool]:
        """Create a custom avatar model (idempotent); optionally mark it deployed at once.

        Returns:
            Its view and whether it was created now.

        Raises:
            ApiError: 400 for an invalid name or (``deployed``) the cap.
        """
        store = self.core.store
        if not AVATAR_NAME.match(name):
            raise bad_request(
                f"The avatar model name '{name}' is invalid: use letters, numbers, hyphens and "
                "underscores.",
                "name",
            )
        existing = store.get_avatar(name)
        created = existing is None
        if existing is None:
            existing = AvatarModel(name, self.core.now(), None, None, [])
            store.put_avatar(existing)
        if deployed and existing.deploy_status != "Succeeded":
            self.deploy(name)
            model = store.get_avatar(name) or existing
            model.deploy_status, model.phases = "Succeeded", []
            store.put_avatar(model)
            existing = model
        return self.view(existing), created

    def deploy(self, name: str) -> dict[str, Any]:
        """Start deploying a custom avatar (NotStarted -> Running -> Succeeded).

        Raises:
            ApiError: 404 for an unknown model; 400 at the cap.
        """
        core = self.core
        final = "Failed" if core.faults.deployment_fails() else "Succeeded"
        phases = core.phases(core.config.avatar_deploy_s, "Running", final)
        cap = core.config.max_avatar_deployments
        outcome = core.store.deploy_avatar(name, cap, phases, core.now())
        if outcome == "missing":
            raise _missing(name)
        if outcome == "cap":
            raise bad_request(AVATAR_CAP_MESSAGE.format(cap=cap))
        core.wakeup.set()
        return self.get(name)

    def remove_deployment(self, name: str) -> None:
        """Remove a custom avatar's deployment (the model stays).

        Raises:
            ApiError: 404 when the model or its deployment does not exist.
        """
        model = self.core.store.get_avatar(name)
        if model is None or model.deploy_status is None:
            raise not_found(f"The custom avatar '{name}' has no deployment.")
        model.deploy_status, model.deploy_requested, model.phases = None, None, []
        self.core.store.put_avatar(model)

    def seed(self, items: list[Any]) -> int:
        """Load seeded avatars (``{name, deployed}``).

        Returns:
            How many were loaded.

        Raises:
            ApiError: 400 for an item without a name, an invalid name or the cap.
        """
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not item.get("name"):
                raise bad_request(f"seed: avatars[{i}] needs a name")
            self.create(str(item["name"]), bool(item.get("deployed", False)))
        return len(items)

    def advance(self, now: float) -> None:
        """Apply due deployment transitions."""
        core = self.core
        for model in core.store.list_avatars():
            if model.phases and core.due(model.phases[0], now):
                while model.phases and core.due(model.phases[0], now):
                    model.deploy_status = model.phases.pop(0)[2]
                core.store.put_avatar(model)


def _missing(name: str) -> ApiError:
    return not_found(f"The custom avatar model '{name}' can't be found.")
