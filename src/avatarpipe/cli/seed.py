"""The emulator seed that makes the scripts' custom avatars and voices exist (not deployed).

Used by ``avatarpipe run`` (posted to the embedded emulator through its admin API) and by the
local stack (written to the seed file ``avatarpipe emulator serve --seed`` reads).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from avatarpipe.scripts.model import Script

__all__ = ["PROJECT_ID", "emulator_seed"]

PROJECT_ID = "avatarpipe"
"""The custom voice project every seeded voice belongs to."""


def emulator_seed(scripts: Iterable[Script]) -> dict[str, Any]:
    """The seed for the scripts' custom avatars (not deployed) and custom voices.

    Args:
        scripts: Validated scripts.

    Returns:
        ``{avatars, projects?, models?, endpoints?}`` in the emulator's seed shape.
    """
    chosen = list(scripts)
    avatars = sorted({s.avatar.character for s in chosen if s.avatar.customized})
    voices = sorted(
        {
            (s.voice.name, str(s.voice.deployment_id), s.voice.effective_locale)
            for s in chosen
            if s.voice.deployment_id
        }
    )
    seed: dict[str, Any] = {"avatars": [{"name": a, "deployed": False} for a in avatars]}
    if voices:
        seed["projects"] = [
            {"id": PROJECT_ID, "kind": "ProfessionalVoice", "displayName": "avatarpipe"}
        ]
        seed["models"] = [
            {
                "id": f"model-{name.lower()}",
                "voiceName": name,
                "locale": locale,
                "projectId": PROJECT_ID,
                "status": "Succeeded",
            }
            for name, _dep, locale in voices
        ]
        seed["endpoints"] = [
            {
                "id": dep,
                "projectId": PROJECT_ID,
                "modelId": f"model-{name.lower()}",
                "status": "Succeeded",
                "properties": {"kind": "HighPerformance"},
            }
            for name, dep, _locale in voices
        ]
    return seed
