"""The emulator-only admin surface: custom avatar deployments, seeding, knobs, stats, and the
custom voice endpoint lifecycle."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import spec_schemas

from avatarpipe.emulator.config import EmulatorConfig
from avatarpipe.emulator.server import EmulatorServer
from avatarpipe.errors import ConfigError

CV = "2026-01-01"
EP = "9f50c644-2121-40e9-9ea7-544e48bfe3cb"


def _poll_statuses(get: Any, timeout: float = 30) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        status = get()
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in ("Succeeded", "Failed", "Disabled"):
            return seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.02)


def test_avatar_deployment_lifecycle_and_removal(make_emu: Any) -> None:
    emu = make_emu(time_scale=1.0, avatar_deploy_s=0.8)
    assert emu.admin("PUT", "/avatars/contoso-ceo").status_code == 201
    assert emu.admin("PUT", "/avatars/contoso-ceo").status_code == 200
    assert emu.admin("GET", "/avatars/contoso-ceo").json()["deployment"] is None
    started = emu.admin("POST", "/avatars/contoso-ceo:deploy")
    assert started.status_code == 202 and started.json()["deployment"]["status"] == "NotStarted"
    seen = _poll_statuses(
        lambda: emu.admin("GET", "/avatars/contoso-ceo").json()["deployment"]["status"]
    )
    assert seen == ["NotStarted", "Running", "Succeeded"]
    listed = emu.admin("GET", "/avatars").json()["value"]
    assert [a["name"] for a in listed] == ["contoso-ceo"]
    assert emu.admin("DELETE", "/avatars/contoso-ceo/deployment").status_code == 204
    assert emu.admin("GET", "/avatars/contoso-ceo").json()["deployment"] is None
    assert emu.admin("DELETE", "/avatars/contoso-ceo/deployment").status_code == 404
    assert emu.admin("POST", "/avatars/ghost:deploy").status_code == 404
    assert emu.admin("PUT", "/avatars/bad name!").status_code == 400


def test_eleventh_deployment_is_refused(emu: Any) -> None:
    for i in range(11):
        assert emu.admin("PUT", f"/avatars/avatar-{i}").status_code == 201
    for i in range(10):
        assert emu.admin("POST", f"/avatars/avatar-{i}:deploy").status_code == 202
    refused = emu.admin("POST", "/avatars/avatar-10:deploy")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "BadRequest"
    assert "at most 10 custom avatar endpoints" in refused.json()["error"]["message"]
    assert refused.headers["x-ms-error-code"] == "BadRequest"
    assert emu.admin("DELETE", "/avatars/avatar-3/deployment").status_code == 204
    assert emu.admin("POST", "/avatars/avatar-10:deploy").status_code == 202


def test_seed_file_and_admin_seed(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        f"""
key: seeded-key
avatars:
  - {{name: contoso-ceo, deployed: true}}
  - {{name: contoso-cfo}}
projects:
  - {{id: Jessica, kind: ProfessionalVoice, locale: en-US}}
models:
  - {{id: Jessica, voiceName: JessicaNeural, projectId: Jessica, consentId: Jessica,
     trainingSetId: Jessica-300, recipe: {{kind: Default}}}}
endpoints:
  - {{id: {EP}, projectId: Jessica, modelId: Jessica}}
"""
    )
    config = EmulatorConfig(
        port=0, state_dir=tmp_path / "s", seed=seed, time_scale=0, renderer="placeholder"
    )
    with EmulatorServer(config) as server:
        h = {"Ocp-Apim-Subscription-Key": "seeded-key"}
        ep = httpx.get(
            f"{server.url}/customvoice/endpoints/{EP}", params={"api-version": CV}, headers=h
        )
        assert ep.status_code == 200 and ep.json()["status"] == "Succeeded"
        spec_schemas.validate(spec_schemas.CUSTOM_VOICE, "Endpoint", ep.json())
        wrong = httpx.get(
            f"{server.url}/customvoice/endpoints",
            params={"api-version": CV},
            headers={"Ocp-Apim-Subscription-Key": "other"},
        )
        assert wrong.status_code == 401
        avatars = httpx.get(f"{server.url}/emulator/avatars", headers=h).json()["value"]
        assert {a["name"]: (a["deployment"] or {}).get("status") for a in avatars} == {
            "contoso-ceo": "Succeeded",
            "contoso-cfo": None,
        }
        more = httpx.post(
            f"{server.url}/emulator/seed",
            headers={**h, "Content-Type": "application/yaml"},
            content=b"avatars:\n  - {name: third, deployed: true}\n",
        )
        assert more.status_code == 200 and more.json()["seeded"]["avatars"] == 1
        bad = httpx.post(f"{server.url}/emulator/seed", headers=h, json={"nonsense": []})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadRequest"
    broken = tmp_path / "broken.yaml"
    broken.write_text("models:\n  - {id: M}\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        EmulatorServer(
            EmulatorConfig(port=0, state_dir=tmp_path / "b", seed=broken, renderer="placeholder")
        ).start()


def test_config_knobs_and_stats(emu: Any) -> None:
    cfg = emu.admin("PUT", "/config", json={"rate_limits": {"create": 5}, "faults": {"seed": 7}})
    assert cfg.status_code == 200
    assert cfg.json()["rate_limits"] == {"create": 5.0} and cfg.json()["faults"]["seed"] == 7
    assert "key" not in cfg.json()
    assert emu.admin("PUT", "/config", json={"warp": 9}).status_code == 400
    assert emu.admin("PUT", "/config", json={"time_scale": -1}).status_code == 400
    emu.put_job("s-1", emu.job_body())
    emu.get_job("s-1")
    emu.get_job("missing")
    stats = emu.stats()
    assert stats["requests_by_route"]["PUT /avatar/batchsyntheses/{id}"] == {"201": 1}
    assert stats["requests_by_route"]["GET /avatar/batchsyntheses/{id}"] == {"200": 1, "404": 1}
    assert stats["jobs_created"] == 1 and stats["puts_by_job_id"] == {"s-1": 1}
    assert stats["rate_limited"] == 0 and stats["faults_injected"] == {}


def test_admin_requires_the_key_when_one_is_set(emu: Any) -> None:
    assert httpx.get(f"{emu.url}/emulator/stats").status_code == 401


def test_custom_voice_model_endpoint_suspend_resume(make_emu: Any) -> None:
    emu = make_emu(time_scale=1.0, cnv_model_training_s=0.6, cnv_endpoint_deploy_s=0.6)
    p = {"api-version": CV}
    c = emu.client
    assert (
        c.put(
            "/customvoice/projects/Jessica",
            params=p,
            json={"kind": "ProfessionalVoice", "locale": "en-US"},
        ).status_code
        == 201
    )
    model = c.put(
        "/customvoice/models/Jessica",
        params=p,
        json={
            "voiceName": "JessicaNeural",
            "recipe": {"kind": "Default"},
            "projectId": "Jessica",
            "consentId": "Jessica",
            "trainingSetId": "Jessica-300",
        },
    )
    assert model.status_code == 201 and model.json()["status"] == "NotStarted"
    early = c.put(
        f"/customvoice/endpoints/{EP}",
        params=p,
        json={"projectId": "Jessica", "modelId": "Jessica"},
    )
    assert early.status_code == 400 and "not trained" in early.text
    op = model.headers["Operation-Location"]
    seen = _poll_statuses(lambda: c.get(op).json()["status"])
    assert seen[-1] == "Succeeded" and "Running" in seen
    ep = c.put(
        f"/customvoice/endpoints/{EP}",
        params=p,
        json={"projectId": "Jessica", "modelId": "Jessica", "description": "d"},
    )
    assert ep.status_code == 201 and ep.json()["properties"] == {"kind": "HighPerformance"}
    seen = _poll_statuses(lambda: c.get(f"/customvoice/endpoints/{EP}", params=p).json()["status"])
    assert seen == ["NotStarted", "Running", "Succeeded"]
    assert c.post(f"/customvoice/endpoints/{EP}:resume", params=p).status_code == 400
    sus = c.post(f"/customvoice/endpoints/{EP}:suspend", params=p)
    assert sus.status_code == 202 and sus.json()["status"] == "Disabling"
    seen = _poll_statuses(lambda: c.get(f"/customvoice/endpoints/{EP}", params=p).json()["status"])
    assert seen == ["Disabling", "Disabled"]
    assert c.get(sus.headers["Operation-Location"]).json()["status"] == "Succeeded"
    res = c.post(f"/customvoice/endpoints/{EP}:resume", params=p)
    assert res.status_code == 202 and res.json()["status"] == "Running"
    seen = _poll_statuses(lambda: c.get(f"/customvoice/endpoints/{EP}", params=p).json()["status"])
    assert seen[-1] == "Succeeded"
    assert (
        c.put(
            "/customvoice/endpoints/not-a-uuid",
            params=p,
            json={"projectId": "Jessica", "modelId": "Jessica"},
        ).status_code
        == 400
    )
    assert c.delete("/customvoice/models/Jessica", params=p).status_code == 400
    assert c.delete("/customvoice/projects/Jessica", params=p).status_code == 400
    assert (
        c.delete("/customvoice/projects/Jessica", params={**p, "forceDelete": "true"}).status_code
        == 204
    )
    assert c.get(f"/customvoice/endpoints/{EP}", params=p).status_code == 404
    assert c.get("/customvoice/models/Jessica", params=p).status_code == 404
