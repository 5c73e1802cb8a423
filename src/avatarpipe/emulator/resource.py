"""The emulated Speech resource: its shared core plus one part per concern.

``EmulatedResource.jobs`` (batch syntheses), ``.voices`` (custom voice projects, models,
endpoints), ``.avatars`` (custom avatars, admin only), ``.operations`` (both APIs) and ``.urls``
(signed result URLs) all work on the same core (store, clock, knobs, faults). The HTTP layer
(``app.py`` and ``routes/``) calls them; the worker (``worker.py``) moves jobs and deployments
through their states. The decisions taken where Azure's docs are ambiguous are listed in the
emulator's README.
"""

from __future__ import annotations

from typing import Any

from avatarpipe.emulator import contract
from avatarpipe.emulator.apierror import bad_request
from avatarpipe.emulator.avatars import Avatars
from avatarpipe.emulator.config import EmulatorConfig
from avatarpipe.emulator.core import ResourceCore
from avatarpipe.emulator.jobs import Jobs
from avatarpipe.emulator.operations import Operations
from avatarpipe.emulator.sas import ResultUrls
from avatarpipe.emulator.store import Store
from avatarpipe.emulator.voices import KINDS, Voices

__all__ = ["AVATAR_API_VERSIONS", "CUSTOM_VOICE_API_VERSIONS", "EmulatedResource"]

AVATAR_API_VERSIONS = contract.api_versions("batch-avatar")
CUSTOM_VOICE_API_VERSIONS = contract.api_versions("custom-voice")
SEED_SECTIONS = {"key", "avatars", *KINDS}


class EmulatedResource(ResourceCore):
    """One emulated Speech resource: its state, knobs and the rules of the service."""

    def __init__(self, config: EmulatorConfig, store: Store) -> None:
        """Create the resource over an opened store.

        Args:
            config: The emulator's configuration.
            store: Its database.
        """
        super().__init__(config, store)
        self.operations = Operations(self)
        self.urls = ResultUrls(self)
        self.jobs = Jobs(self, self.operations, self.urls)
        self.voices = Voices(self, self.operations)
        self.avatars = Avatars(self)

    def seed(self, data: dict[str, Any], *, exact: bool = False) -> dict[str, int]:
        """Load avatars, CNV projects/models/endpoints and the key from a seed document.

        Seeded models and endpoints are ``Succeeded`` unless they say otherwise.

        Args:
            data: ``{key?, avatars: [{name, deployed}], projects: [...], models: [...],
                endpoints: [...]}`` (CNV items in API shape).
            exact: The document is the whole resource: avatars and CNV items it does not
                declare are removed (a declared resource file; jobs are kept).

        Returns:
            How many items of each kind were added.

        Raises:
            ApiError: 400 for an invalid item.
        """
        counts = self._seed(data)
        if exact:
            self._keep_only(data)
        return counts

    def _keep_only(self, data: dict[str, Any]) -> None:
        """Remove the avatars and CNV items ``data`` does not declare."""
        store = self.store
        avatars = {str(a.get("name")) for a in data.get("avatars") or []}
        for model in store.list_avatars():
            if model.name not in avatars:
                store.delete_avatar(model.name)
        for kind in ("endpoints", "models", "projects"):
            ids = {str(item.get("id")).lower() for item in data.get(kind) or []}
            for res in store.list_cv(kind):
                if res.id.lower() not in ids:
                    store.delete_cv(kind, res.id)

    def _seed(self, data: dict[str, Any]) -> dict[str, int]:
        if not isinstance(data, dict):
            raise bad_request("The seed must be a mapping.")
        unknown = set(data) - SEED_SECTIONS
        if unknown:
            raise bad_request(f"seed: unknown section(s) {', '.join(sorted(unknown))}")
        if data.get("key") and self.config.key is None:
            self.key = str(data["key"])
        counts = {"avatars": self.avatars.seed(data.get("avatars") or [])}
        for kind in KINDS:
            counts[kind] = self.voices.seed(kind, data.get(kind) or [])
        return counts

    def advance_phases(self) -> None:
        """Apply due status transitions of CNV models/endpoints and avatar deployments."""
        now = self.now()
        self.voices.advance(now)
        self.avatars.advance(now)
