"""Helpers for flow tests: a running emulator with an admin client, and CNV seeds."""

from __future__ import annotations

from typing import Any

import httpx

from avatarpipe.emulator.server import EmulatorServer
from avatarpipe.speech.emulator_admin import EmulatorAdminClient

LOCAL_KEY = "local-emulator-key"

VOICE_ID = "9f50c644-2121-40e9-9ea7-544e48bfe3cb"
SMALL = (320, 180)


class Emu:
    """A running emulator: ``admin`` (its admin API) and ``http`` (raw calls to the Azure routes).

    Both send the emulator's own key (the local key when it has none).
    """

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.url = server.url
        key = server.config.key or LOCAL_KEY
        self.admin = EmulatorAdminClient(server.url, key=key)
        self.http = httpx.Client(
            base_url=server.url, headers={"Ocp-Apim-Subscription-Key": key}, timeout=30
        )

    def seed(self, data: dict[str, Any]) -> None:
        self.admin.seed(data)

    def configure(self, **knobs: Any) -> None:
        self.admin.configure(**knobs)

    def stats(self) -> dict[str, Any]:
        return self.admin.stats()

    def close(self) -> None:
        self.admin.close()
        self.http.close()
        self.server.stop()


def cnv_seed(
    voice_name: str = "ContosoNeural", endpoint_id: str = VOICE_ID, status: str = "Succeeded"
) -> dict[str, Any]:
    return {
        "projects": [{"id": "contoso", "kind": "ProfessionalVoice", "locale": "en-US"}],
        "models": [
            {
                "id": "contoso-model",
                "voiceName": voice_name,
                "projectId": "contoso",
                "consentId": "contoso",
                "trainingSetId": "contoso-300",
                "recipe": {"kind": "Default"},
                "locale": "en-US",
            }
        ],
        "endpoints": [
            {
                "id": endpoint_id,
                "projectId": "contoso",
                "modelId": "contoso-model",
                "status": status,
            }
        ],
    }
