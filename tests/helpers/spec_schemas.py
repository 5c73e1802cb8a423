"""Validate JSON bodies against the committed contract (``avatarpipe.emulator.contract``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema

from avatarpipe.emulator import contract

BATCH_AVATAR = "batch-avatar/2024-08-01"
BATCH_AVATAR_PREVIEW = "batch-avatar/2024-04-15-preview"
CUSTOM_VOICE = "custom-voice/2026-01-01"
CUSTOM_VOICE_PREVIEW = "custom-voice/2024-02-01-preview"


def spec(version: str) -> dict[str, Any]:
    """Load one spec (``batch-avatar/2024-08-01`` ...)."""
    return contract.spec(version)


def example_files(version: str) -> list[Path]:
    """The example files of one spec version."""
    return contract.example_files(version)


def validator(version: str, definition: str) -> jsonschema.Draft4Validator:
    """A validator for ``#/definitions/<definition>`` of a spec."""
    return jsonschema.Draft4Validator(contract.definition(version, definition))


def validate(version: str, definition: str, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` when ``body`` does not match the definition."""
    validator(version, definition).validate(body)


def response_schema(
    version: str, path: str, method: str, status: int | str
) -> dict[str, Any] | None:
    """The schema of a documented response (``default`` for errors), resolved to a full schema."""
    op = spec(version)["paths"][path][method.lower()]
    resp = op["responses"].get(str(status)) or op["responses"].get("default")
    if resp is None or "schema" not in resp:
        return None
    return {**resp["schema"], "definitions": spec(version)["definitions"]}


def validate_response(version: str, path: str, method: str, status: int, body: Any) -> None:
    """Validate a response body against the spec's schema for that path, method and status."""
    schema = response_schema(version, path, method, status)
    assert schema is not None, f"no schema for {method} {path} {status}"
    jsonschema.Draft4Validator(schema).validate(body)
