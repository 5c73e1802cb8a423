"""The emulator's own request models agree with the committed contract, and it imports no client.

A bug in the client's wire models must not be able to hide in the emulator: the emulator has its
own models (``avatarpipe.emulator.models``), and these tests check them field by field against
the contract (``avatarpipe.emulator.contract``), which is generated from Microsoft's specs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import BaseModel

from avatarpipe.emulator import contract, models

EMULATOR = Path(models.__file__).resolve().parent
BATCH = models.BATCH_CONTRACT
CV = models.CV_CONTRACT

# model -> (contract version, definition, fields the service accepts beyond the spec)
CHECKED: list[tuple[type[BaseModel], str, str, set[str]]] = [
    (models.JobBody, BATCH, "BatchSynthesis", set()),
    (models.AvatarConfig, BATCH, "BatchAvatarConfig", models.EXTRA_AVATAR_FIELDS),
    (models.SynthesisConfig, BATCH, "BatchSynthesisConfig", set()),
    (models.JobInput, BATCH, "BatchSynthesisInput", set()),
    (models.JobProperties, BATCH, "BatchSynthesisProperties", set()),
    (models.Coordinate, BATCH, "BatchAvatarCoordinateDefinition", set()),
    (models.VideoCrop, BATCH, "BatchAvatarVideoCropDefinition", set()),
    (models.ProjectBody, CV, "Project", set()),
    (models.ModelBody, CV, "Model", set()),
    (models.EndpointBody, CV, "Endpoint", set()),
    (models.EndpointProperties, CV, "EndpointProperties", set()),
    (models.Recipe, CV, "Recipe", set()),
]


def _wire_names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


@pytest.mark.parametrize(
    ("model", "version", "definition", "extra"),
    CHECKED,
    ids=[f"{m.__name__}={d}" for m, _, d, _ in CHECKED],
)
def test_every_field_is_in_the_contract(
    model: type[BaseModel], version: str, definition: str, extra: set[str]
) -> None:
    schema = contract.spec(version)["definitions"][definition]
    props = schema["properties"]
    names = _wire_names(model)
    assert names - extra <= set(props), sorted(names - extra - set(props))
    writable = {n for n, p in props.items() if not p.get("readOnly")}
    required = set(schema.get("required", []))
    # Every writable field of the contract is modelled (read-only ones are answers, not requests).
    assert writable - names <= {"id"}, sorted(writable - names)
    # A field the contract requires is required by the model too (or checked by a rule:
    # ``synthesisConfig.voice`` may be left out with a custom avatar's own voice, and the
    # model's recipe/project/consent/training set are checked by the handler with the target).
    rule_checked = {"voice", "recipe", "projectId", "consentId", "trainingSetId"}
    for name in required - rule_checked:
        field = next(f for n, f in model.model_fields.items() if (f.alias or n) == name)
        assert field.is_required(), name


def test_enums_are_the_contracts() -> None:
    assert contract.enum_values(BATCH, "InputKind") == ("PlainText", "SSML")
    body = models.JobBody.model_validate(
        {"inputKind": "ssml", "avatarConfig": {"talkingAvatarCharacter": "lisa"}}
    )
    assert body.input_kind == "SSML"
    with pytest.raises(ValueError, match="PlainText, SSML"):
        models.JobBody.model_validate(
            {"inputKind": "Markdown", "avatarConfig": {"talkingAvatarCharacter": "lisa"}}
        )
    for kind in contract.enum_values(CV, "ProjectKind"):
        assert models.ProjectBody.model_validate({"kind": kind.upper()}).kind == kind
    for kind in contract.enum_values(CV, "EndpointKind"):
        assert models.EndpointProperties.model_validate({"kind": kind.lower()}).kind == kind


def test_the_id_pattern_is_the_contracts() -> None:
    pattern = contract.spec(BATCH)["definitions"]["ResourceId"]["pattern"]
    assert models._RESOURCE_ID.pattern == pattern
    assert models.check_resource_id("talking-avatar-batch-synthesis-job-1")
    for bad in ("ab", "-starts-with-dash", "x" * 65, "has space"):
        with pytest.raises(Exception, match="invalid"):
            models.check_resource_id(bad)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_emulator_imports_no_client() -> None:
    offenders = {
        f"{path.relative_to(EMULATOR)}: {name}"
        for path in EMULATOR.rglob("*.py")
        for name in _imports(path)
        if name.startswith(("avatarpipe.speech", "avatarpipe.batch", "flows"))
    }
    assert not offenders, sorted(offenders)
