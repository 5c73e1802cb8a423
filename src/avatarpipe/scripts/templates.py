"""Where the project's ``templates/`` directory is, and safe template names inside it."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from avatarpipe.errors import ConfigError

__all__ = [
    "DEFAULT_SSML_TEMPLATE",
    "TEMPLATES_ENV",
    "check_relative_path",
    "find_template",
    "templates_root",
]

TEMPLATES_ENV = "AVATARPIPE_TEMPLATES_DIR"
"""Environment variable that overrides where ``templates/`` is (for installed wheels)."""

DEFAULT_SSML_TEMPLATE = "ssml/presenter.xml.j2"
"""The template used when a script names none."""

_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_relative_path(value: str) -> str | None:
    """Say why ``value`` is not a safe relative path, or return ``None`` when it is.

    A safe path is relative, uses ``/`` as separator, and every part is made of letters,
    digits, ``_``, ``.`` and ``-`` without being ``.`` or ``..``: it cannot leave the
    directory it is resolved against.

    Args:
        value: The path as written in a script.

    Returns:
        The reason it is unsafe, or ``None``.
    """
    if not value or not value.strip():
        return "path is empty"
    if "\\" in value:
        return f"path {value!r} uses '\\'; write '/' between directories"
    if value.startswith("/") or re.match(r"^[A-Za-z]:", value):
        return f"path {value!r} is absolute; give it relative to the script file"
    for part in value.split("/"):
        if part in ("", ".", ".."):
            return (
                f"path {value!r} must not contain empty, '.' or '..' parts "
                "(it may not leave the script's directory)"
            )
        if not _PART_RE.match(part):
            return (
                f"path {value!r} has an unsafe part {part!r} (letters, digits, '_', '.', '-' only)"
            )
    return None


@lru_cache(maxsize=4)
def _walk_up(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if (directory / "templates" / "ssml").is_dir():
            return directory / "templates"
    return None


def templates_root() -> Path:
    """Return the project's ``templates/`` directory.

    ``AVATARPIPE_TEMPLATES_DIR`` wins when set; otherwise the directories above this module are
    searched for one holding ``templates/ssml``.

    Returns:
        The absolute path of ``templates/``.

    Raises:
        ConfigError: The directory cannot be found, or the variable names a missing directory.
    """
    override = os.environ.get(TEMPLATES_ENV)
    if override:
        path = Path(override).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"{TEMPLATES_ENV}={override!r} is not a directory")
        return path
    found = _walk_up(Path(__file__).resolve().parent)
    packaged = Path(__file__).resolve().parents[1] / "_templates"  # inside an installed wheel
    if found is None and (packaged / "ssml").is_dir():
        found = packaged
    if found is None:
        raise ConfigError(
            f"cannot find the templates/ directory above {Path(__file__).parent}; "
            f"set {TEMPLATES_ENV}"
        )
    return found


def find_template(name: str, script_dir: Path | None = None) -> Path | None:
    """Find a template by its relative name.

    The project's ``templates/`` directory is searched first, then the script's own directory,
    so a script may ship its own template next to it.

    Args:
        name: A safe relative name such as ``ssml/presenter.xml.j2``.
        script_dir: The directory of the script file, when known.

    Returns:
        The template file, or ``None`` when neither place has it.

    Raises:
        ConfigError: The project's templates directory cannot be found.
    """
    roots = [templates_root()]
    if script_dir is not None:
        roots.append(script_dir)
    for root in roots:
        candidate = root / name
        if candidate.is_file():
            return candidate
    return None
