"""Helpers for flow tests: a running emulator with an admin client, and CNV seeds."""

from __future__ import annotations

from typing import Any

import httpx

from avatarpipe.emulator.server import EmulatorServer

VOICE_ID = "9f50c644-2121-40e9-9ea7-544e48bfe3cb"
SMALL = (320, 180)


class Emu:
    """A running emulator with an admin client."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.url = server.url
        self.http = httpx.Client(
            base_url=server.url,
            headers={"Ocp-Apim-Subscription-Key": "local-emulator-key"},
            timeout=30,
        )

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        resp = self.http.request(method, f"/emulator{path}", **kwargs)
        return resp

    def seed(self, data: dict[str, Any]) -> None:
        resp = self.admin("POST", "/seed", json=data)
        assert resp.status_code < 300, resp.text

    def configure(self, **knobs: Any) -> None:
        resp = self.admin("PUT", "/config", json=knobs)
        assert resp.status_code == 200, resp.text

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self.admin("GET", "/stats").json()
        return data

    def close(self) -> None:
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
