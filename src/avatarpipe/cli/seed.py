"""The emulator's declared resource: the avatars, voices and voice endpoints it holds.

The embedded emulator (``avatarpipe run`` without ``AVATARPIPE_SPEECH_ENDPOINT``) and the local
stack (``make up``) hold what a **resource file** declares, never what the script being run
names, so the pre-flight checks catch a misspelt avatar, voice name or deployment id offline,
as Azure would. The default file ships in the package (``emulator/resource.default.yaml``: the
custom avatar and voice of the demo script); ``AVATARPIPE_EMULATOR_RESOURCE`` names your own.
Its format is the emulator's seed file (``src/avatarpipe/emulator/README.md``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from avatarpipe.errors import ConfigError
from avatarpipe.settings import Settings

__all__ = ["DEFAULT_RESOURCE", "describe_resource", "embedded_emulator", "resource_file"]

DEFAULT_RESOURCE = Path(__file__).resolve().parents[1] / "emulator" / "resource.default.yaml"
"""The resource file shipped with the package (the demo's custom avatar and voice)."""


def resource_file(conf: Settings) -> Path:
    """The emulator's resource file: ``AVATARPIPE_EMULATOR_RESOURCE``, else the default one.

    Raises:
        ConfigError: The named file does not exist.
    """
    path = conf.emulator_resource or DEFAULT_RESOURCE
    if not path.is_file():
        raise ConfigError(
            f"AVATARPIPE_EMULATOR_RESOURCE: {path} is not a file; copy {DEFAULT_RESOURCE.name} "
            "from the package (avatarpipe/emulator/) and declare your avatars and voices in it"
        )
    return path


def describe_resource(path: Path) -> str:
    """One line naming what a resource file declares (its avatars and custom voices).

    Raises:
        ConfigError: The file is not readable YAML.
    """
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not a readable resource file ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a resource file is a mapping (avatars, models, endpoints)")
    avatars = [str(a.get("name")) for a in data.get("avatars") or [] if isinstance(a, dict)]
    models = {
        str(m.get("id")): str(m.get("voiceName") or f"{m.get('id')}Neural")
        for m in data.get("models") or []
        if isinstance(m, dict)
    }
    voices = [
        f"{models.get(str(e.get('modelId')), '?')} ({e.get('id')})"
        for e in data.get("endpoints") or []
        if isinstance(e, dict)
    ]
    return (
        f"custom avatars: {', '.join(avatars) or 'none'}; "
        f"custom voices: {', '.join(voices) or 'none'}"
    )


@contextmanager
def embedded_emulator(conf: Settings) -> Iterator[str]:
    """Run the emulator in this process, holding the declared resource; yields its URL.

    Its state lives in ``<output dir>/.emulator`` (``AVATARPIPE_EMULATOR_STATE``), so a rerun
    re-attaches to the jobs of the last one; at each start it holds exactly what the resource
    file declares (avatars and voices that the file no longer declares are removed).

    Raises:
        ConfigError: The resource file is missing or invalid.
        AvatarpipeError: The emulator did not start.
    """
    from avatarpipe.emulator.config import EmulatorConfig
    from avatarpipe.emulator.server import EmulatorServer

    resource = resource_file(conf)
    state = Path(os.environ.get("AVATARPIPE_EMULATOR_STATE", str(conf.output_dir / ".emulator")))
    scale = float(os.environ.get("AVATARPIPE_EMULATOR_TIME_SCALE", "0.02"))
    config = EmulatorConfig(
        port=0, state_dir=state, time_scale=scale, seed=resource, seed_exact=True
    )
    with EmulatorServer(config) as server:
        yield server.url
