"""Replay the official spec examples against the emulator and validate every answer.

Each example of the batch avatar (2024-08-01, 2024-04-15-preview) and custom voice (2026-01-01,
2024-02-01-preview) specs that concerns batch syntheses, operations, projects, models or
endpoints is sent as written (method, path, query, headers, body) to a fresh emulator seeded with
what it refers to. The status must be the example's, and the body must validate against the
spec's schema for that path, method and status (jsonschema, Draft 4). Error answers are validated
against ``ErrorResponse``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import spec_schemas

VERSIONS = [
    spec_schemas.BATCH_AVATAR,
    spec_schemas.BATCH_AVATAR_PREVIEW,
    spec_schemas.CUSTOM_VOICE,
    spec_schemas.CUSTOM_VOICE_PREVIEW,
]
CV_PREFIXES = ("/projects", "/models", "/endpoints", "/operations")
JOB_ID = "talking-avatar-batch-synthesis-job-1"
EP_ID = "9f50c644-2121-40e9-9ea7-544e48bfe3cb"
PROJECT = {
    "id": "Jessica",
    "kind": "ProfessionalVoice",
    "locale": "en-US",
    "description": "Project for Jessica Voice",
}
MODEL = {
    "id": "Jessica",
    "voiceName": "JessicaNeural",
    "description": "Jessica voice",
    "recipe": {"kind": "Default", "version": "V7.2023.03"},
    "projectId": "Jessica",
    "consentId": "Jessica",
    "trainingSetId": "Jessica-300",
    "locale": "en-US",
}
ENDPOINT = {
    "id": EP_ID,
    "description": "Endpoint for Jessica voice",
    "projectId": "Jessica",
    "modelId": "Jessica",
    "properties": {"kind": "HighPerformance"},
}
PREVIEW_CREATE = next(
    p
    for p in spec_schemas.example_files(spec_schemas.BATCH_AVATAR_PREVIEW)
    if p.name == "create_batch_synthesis.json"
)


def _operations(version: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Example file name -> (path template, method, operation) from ``x-ms-examples``."""
    found: dict[str, tuple[str, str, dict[str, Any]]] = {}
    spec = spec_schemas.spec(version)
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            for ref in op.get("x-ms-examples", {}).values():
                found[Path(ref["$ref"]).name] = (path, method, op)
    return found


def _cases() -> list[Any]:
    cases = []
    for version in VERSIONS:
        ops = _operations(version)
        for file in spec_schemas.example_files(version):
            if file.name not in ops:
                continue
            path, _, _ = ops[file.name]
            if version.startswith("custom-voice") and not path.startswith(CV_PREFIXES):
                continue
            cases.append(pytest.param(version, file, id=f"{version}/{file.stem}"))
    return cases


def _job_request() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PREVIEW_CREATE.read_text())["parameters"]["definition"]
    return data


def _prepare(emu: Any, version: str, name: str, params: dict[str, Any]) -> None:
    """Create what the example refers to."""
    if version.startswith("batch-avatar"):
        if name == "create_batch_synthesis.json":
            return
        api = version.split("/")[1]
        op_id = params["id"] if name == "get_operation.json" else None
        headers = {"Operation-Id": op_id} if op_id else {}
        resp = emu.client.put(
            f"/avatar/batchsyntheses/{JOB_ID}",
            params={"api-version": api},
            json=_job_request(),
            headers=headers,
        )
        assert resp.status_code == 201, resp.text
        if name in ("get_batch_synthesis.json", "get_batch_syntheses.json"):
            emu.wait_job(JOB_ID)
        return
    seed: dict[str, Any] = {"projects": [PROJECT], "models": [MODEL], "endpoints": [ENDPOINT]}
    if name == "create_project.json":
        seed = {}
    elif name in ("create_model.json", "create_multi_style_model.json", "delete_project.json"):
        seed = {"projects": [PROJECT]}
    elif name in ("create_endpoint.json", "delete_model.json"):
        seed = {"projects": [PROJECT], "models": [MODEL]}
    elif name == "resume_endpoint.json":
        seed["endpoints"] = [{**ENDPOINT, "status": "Disabled"}]
    emu.api.seed(seed)
    if name == "get_operation.json":
        body = {k: v for k, v in MODEL.items() if k not in ("id", "locale")}
        resp = emu.client.put(
            "/customvoice/models/JessicaOp",
            params={"api-version": version.split("/")[1]},
            json=body,
            headers={"Operation-Id": params["id"]},
        )
        assert resp.status_code == 201, resp.text


@pytest.mark.parametrize(("version", "example"), _cases())
def test_example(make_emu: Any, version: str, example: Path) -> None:
    data = json.loads(example.read_text())
    params: dict[str, Any] = data["parameters"]
    path_t, method, op = _operations(version)[example.name]
    ((status, expected),) = data["responses"].items()
    emu = make_emu()
    _prepare(emu, version, example.name, params)

    base = "/avatar" if version.startswith("batch-avatar") else "/customvoice"
    query: dict[str, Any] = {}
    headers: dict[str, str] = {}
    body = None
    path = path_t
    for p in op["parameters"]:
        if "$ref" in p:
            p = spec_schemas.spec(version)["parameters"][p["$ref"].split("/")[-1]]
        name = p["name"]
        if name not in params:
            continue
        if p["in"] == "path":
            path = path.replace("{" + name + "}", str(params[name]))
        elif p["in"] == "query":
            query[name] = params[name]
        elif p["in"] == "header":
            headers[name] = str(params[name])
        elif p["in"] == "body":
            body = params[name]
    resp = emu.client.request(method.upper(), base + path, params=query, headers=headers, json=body)
    assert resp.status_code == int(status), resp.text
    assert resp.headers.get("apim-request-id")
    if "body" in expected:
        got = resp.json()
        spec_schemas.validate_response(version, path_t, method, resp.status_code, got)
        want = expected["body"]
        if isinstance(want, dict) and "value" not in want:
            # Same fields as the example; ``internalId`` is the service's documented extra.
            assert set(got) - {"internalId"} == set(want), (sorted(got), sorted(want))
            for name in (
                "id",
                "status",
                "inputKind",
                "customVoices",
                "avatarConfig",
                "synthesisConfig",
                "projectId",
                "modelId",
                "kind",
                "voiceName",
            ):
                if name in want and name != "status":
                    assert got[name] == want[name], name
    else:
        assert resp.content == b""
    for name in expected.get("headers", {}):
        assert resp.headers.get(name), name
    if "Operation-Location" in expected.get("headers", {}):
        op_url = resp.headers["Operation-Location"]
        assert op_url.startswith(emu.url + base + "/operations/")
        follow = emu.client.get(op_url)
        assert follow.status_code == 200
        op_path = "/operations/{id}"
        spec_schemas.validate_response(version, op_path, "get", 200, follow.json())


def _error_cases() -> list[Any]:
    out = []
    for version in VERSIONS:
        for kind in (
            "bad-version",
            "bad-body",
            "unauthorized",
            "not-found",
            "rate-limited",
            "no-route",
            "wrong-method",
        ):
            out.append(pytest.param(version, kind, id=f"{version}/{kind}"))
    return out


@pytest.mark.parametrize(("version", "kind"), _error_cases())
def test_error_shapes(make_emu: Any, version: str, kind: str) -> None:
    api = version.split("/")[1]
    avatar = version.startswith("batch-avatar")
    emu = make_emu(rate_limit_per_minute=1) if kind == "rate-limited" else make_emu()
    base = "/avatar" if avatar else "/customvoice"
    item = f"{base}/batchsyntheses/job-x" if avatar else f"{base}/endpoints/{EP_ID}"
    template = "/batchsyntheses/{id}" if avatar else "/endpoints/{id}"
    method = "get"
    params = {"api-version": api}
    headers: dict[str, str] = {}
    body: Any = None
    expected = {
        "bad-version": 400,
        "bad-body": 400,
        "unauthorized": 401,
        "not-found": 404,
        "rate-limited": 429,
        "no-route": 404,
        "wrong-method": 405,
    }[kind]
    if kind == "bad-version":
        params = {"api-version": "2020-01-01"}
    elif kind == "bad-body":
        method = "put"
        body = {"inputKind": "PlainText", "avatarConfig": {}} if avatar else {"projectId": "x"}
    elif kind == "unauthorized":
        headers = {"Ocp-Apim-Subscription-Key": "wrong-key"}
    elif kind == "rate-limited":
        assert emu.client.get(item, params=params).status_code == 404
    elif kind == "no-route":
        item = f"{base}/nothing-here"
    elif kind == "wrong-method":
        method = "patch"
    resp = emu.client.request(method.upper(), item, params=params, headers=headers, json=body)
    assert resp.status_code == expected, resp.text
    got = resp.json()
    spec_schemas.validate(version, "ErrorResponse", got)
    if kind not in ("no-route", "wrong-method"):
        spec_schemas.validate_response(version, template, method, expected, got)
    assert resp.headers["x-ms-error-code"] == got["error"]["code"]
    if kind == "rate-limited":
        assert int(resp.headers["Retry-After"]) >= 1
