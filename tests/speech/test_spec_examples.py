"""Every example in the official specs parses into our models and round-trips through them."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import spec_schemas
from pydantic import BaseModel

from avatarpipe.speech.models import (
    BatchSynthesis,
    Endpoint,
    Model,
    Operation,
    Page,
    Project,
    Recipe,
)

VERSIONS = [
    spec_schemas.BATCH_AVATAR,
    spec_schemas.BATCH_AVATAR_PREVIEW,
    spec_schemas.CUSTOM_VOICE,
    spec_schemas.CUSTOM_VOICE_PREVIEW,
]

# file stem -> (model of one item, spec definition of the body, whether the body is a page)
MODELLED: dict[str, tuple[type[BaseModel], str, bool]] = {
    "create_batch_synthesis": (BatchSynthesis, "BatchSynthesis", False),
    "get_batch_synthesis": (BatchSynthesis, "BatchSynthesis", False),
    "get_batch_syntheses": (BatchSynthesis, "PaginatedBatchSynthesis", True),
    "get_operation": (Operation, "Operation", False),
    "create_endpoint": (Endpoint, "Endpoint", False),
    "get_endpoint": (Endpoint, "Endpoint", False),
    "suspend_endpoint": (Endpoint, "Endpoint", False),
    "resume_endpoint": (Endpoint, "Endpoint", False),
    "get_endpoints": (Endpoint, "PaginatedEndpoints", True),
    "create_model": (Model, "Model", False),
    "create_multi_style_model": (Model, "Model", False),
    "get_model": (Model, "Model", False),
    "get_models": (Model, "PaginatedModels", True),
    "create_project": (Project, "Project", False),
    "get_project": (Project, "Project", False),
    "get_projects": (Project, "PaginatedProjects", True),
    "get_recipes": (Recipe, "Recipe", True),
}
# Objects we keep no model for (the pipeline never manages them): checked against the spec as
# plain JSON, lists parsed as a generic ``Page``.
UNMODELLED = {
    "create_consent": "Consent",
    "create_consent_with_multipart_form": "Consent",
    "get_consent": "Consent",
    "get_consents": "PaginatedConsents",
    "create_trainingset": "TrainingSet",
    "get_trainingset": "TrainingSet",
    "get_trainingsets": "PaginatedTrainingSets",
    "create_personalvoice": "PersonalVoice",
    "create_personalvoice_with_multipart_form": "PersonalVoice",
    "get_personalvoice": "PersonalVoice",
    "get_personalvoices": "PaginatedPersonalVoices",
    "get_base_models": "PaginatedBaseModels",
}
NO_BODY = {
    "delete_batch_synthesis",
    "delete_endpoint",
    "delete_project",
    "delete_model",
    "delete_personalvoice",
    "delete_trainingset",
    "upload_trainingset",
}
# Enum-valued keys: the service echoes some in another case (``Mp4``); we send the canonical one.
CASE_INSENSITIVE_KEYS = {"videoFormat", "videoCodec", "subtitleType", "inputKind", "status", "kind"}

ALL_EXAMPLES = [(v, p) for v in VERSIONS for p in spec_schemas.example_files(v)]


def _normal(value: Any, key: str | None = None) -> Any:
    """Normalise for comparison: datetimes by instant (to the microsecond), numbers as float."""
    if isinstance(value, dict):
        return {k: _normal(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v, key) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if key and key.endswith("DateTime"):
            return _instant(value)
        if key in CASE_INSENSITIVE_KEYS:
            return value.lower()
    return value


def _instant(text: str) -> datetime:
    head, _, frac = text.rstrip("Z").partition(".")
    parsed = datetime.fromisoformat(head + (f".{frac[:6].ljust(6, '0')}" if frac else ""))
    return parsed


def _check_item(
    model: type[BaseModel], body: dict[str, Any], version: str, definition: str
) -> None:
    parsed = model.model_validate(body)
    wire = parsed.wire()  # type: ignore[attr-defined]
    spec_schemas.validate(version, definition, wire)
    assert _normal(wire) == _normal(body)
    again = model.model_validate(wire)
    assert again.wire() == wire  # type: ignore[attr-defined]


def test_example_inventory() -> None:
    names = {p.stem for _, p in ALL_EXAMPLES}
    unknown = names - set(MODELLED) - set(UNMODELLED) - NO_BODY
    assert not unknown, f"examples without a check: {sorted(unknown)}"
    print(f"\nspec example files checked: {len(ALL_EXAMPLES)}")
    assert len(ALL_EXAMPLES) >= 60


@pytest.mark.parametrize(
    ("version", "path"), ALL_EXAMPLES, ids=[f"{v}/{p.name}" for v, p in ALL_EXAMPLES]
)
def test_example_responses_parse_and_round_trip(version: str, path: Path) -> None:
    example = json.loads(path.read_text())
    responses = example["responses"]
    assert responses, path
    for status, response in responses.items():
        body = response.get("body")
        stem = path.stem
        if stem in NO_BODY:
            assert body is None
            assert status in ("202", "204")
            continue
        assert isinstance(body, dict)
        if stem in MODELLED:
            model, definition, paged = MODELLED[stem]
            if paged:
                page = Page.model_validate(body)
                assert page.value, "an example page should hold items"
                page_def = f"Paginated{definition}s" if definition == "Recipe" else definition
                if page_def in spec_schemas.spec(version)["definitions"]:
                    spec_schemas.validate(version, page_def, page.wire())
                assert _normal(page.wire()) == _normal(body)
                item_def = {
                    "PaginatedBatchSynthesis": "BatchSynthesis",
                    "PaginatedEndpoints": "Endpoint",
                    "PaginatedModels": "Model",
                    "PaginatedProjects": "Project",
                    "Recipe": "Recipe",
                }[definition]
                for item in page.value:
                    _check_item(model, item, version, item_def)
            else:
                _check_item(model, body, version, definition)
        else:
            definition = UNMODELLED[stem]
            spec_schemas.validate(version, definition, body)
            if "value" in body:
                page = Page.model_validate(body)
                assert all(isinstance(item, dict) for item in page.value)
                assert _normal(page.wire()) == _normal(body)


def test_example_request_bodies_are_accepted() -> None:
    """The request bodies in the examples pass our own pre-flight checks."""
    checked = 0
    for version, path in ALL_EXAMPLES:
        params = json.loads(path.read_text())["parameters"]
        if path.stem == "create_batch_synthesis":
            job = BatchSynthesis.model_validate(params["definition"])
            body = job.to_request()
            spec_schemas.validate(version, "BatchSynthesis", body)
            checked += 1
        elif path.stem == "create_endpoint":
            endpoint = Endpoint.model_validate(params["endpoint"])
            body = endpoint.to_request()
            spec_schemas.validate(version, "Endpoint", body)
            assert body == params["endpoint"]
            checked += 1
        elif path.stem == "create_project":
            project = Project.model_validate(params["project"])
            spec_schemas.validate(version, "Project", project.wire())
            checked += 1
        elif path.stem in ("create_model", "create_multi_style_model"):
            model = Model.model_validate(params["model"])
            spec_schemas.validate(version, "Model", model.wire())
            checked += 1
    assert checked == 1 + 2 + 1 + 4
