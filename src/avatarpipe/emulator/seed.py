"""Seed files: custom avatars, CNV projects/models/endpoints and the resource key, in YAML.

Example::

    key: my-emulator-key            # used when the emulator was started without --key
    avatars:
      - {name: contoso-ceo, deployed: true}
    projects:
      - {id: Jessica, kind: ProfessionalVoice, locale: en-US}
    models:
      - {id: Jessica, voiceName: JessicaNeural, projectId: Jessica, consentId: Jessica,
         trainingSetId: Jessica-300, recipe: {kind: Default}}
    endpoints:
      - {id: 9f50c644-2121-40e9-9ea7-544e48bfe3cb, projectId: Jessica, modelId: Jessica}

Models and endpoints are ``Succeeded`` unless they give another ``status``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from avatarpipe.emulator.apierror import ApiError
from avatarpipe.errors import ConfigError

if TYPE_CHECKING:
    from avatarpipe.emulator.resource import EmulatedResource

__all__ = ["load_seed_file"]


def load_seed_file(
    resource: EmulatedResource, path: Path, *, exact: bool = False
) -> dict[str, int]:
    """Load a YAML (or JSON) seed file into the emulated resource.

    Args:
        resource: The emulated resource.
        path: The seed file.
        exact: The file is the whole resource: what it does not declare is removed.

    Returns:
        How many items of each kind were loaded.

    Raises:
        ConfigError: The file is missing, not YAML, or holds an invalid item.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the seed file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    try:
        return resource.seed(data or {}, exact=exact)
    except ApiError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None
