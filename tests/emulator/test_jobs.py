"""Batch synthesis jobs against a real emulator over loopback: lifecycle, paging, auth, rejections,
results, TTL, the concurrency cap, restart persistence and destinationContainerUrl (Azurite)."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import spec_schemas

from avatarpipe.media.ffmpeg import probe
from avatarpipe.speech.models import SummaryFile

V = "2024-08-01"
CV = "2026-01-01"
EP = "9f50c644-2121-40e9-9ea7-544e48bfe3cb"
CNV_SEED = {
    "projects": [{"id": "Jessica", "kind": "ProfessionalVoice", "locale": "en-US"}],
    "models": [
        {
            "id": "Jessica",
            "voiceName": "JessicaNeural",
            "projectId": "Jessica",
            "consentId": "Jessica",
            "trainingSetId": "Jessica-300",
            "recipe": {"kind": "Default"},
        }
    ],
    "endpoints": [{"id": EP, "projectId": "Jessica", "modelId": "Jessica"}],
}


def _statuses_until_final(
    emu: Any, job_id: str, timeout: float = 60
) -> tuple[list[str], dict[str, Any]]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        body = emu.get_job(job_id).json()
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        if body["status"] in ("Succeeded", "Failed"):
            return seen, body
        assert time.monotonic() < deadline
        time.sleep(0.03)


def test_lifecycle_results_and_summary(make_emu: Any, tmp_path: Path) -> None:
    emu = make_emu(time_scale=1.0, queue_delay_s=0.3, render_s_per_video_s=0.5)
    created = emu.put_job("life-1", emu.job_body("One two three four five six."))
    assert created.status_code == 201
    assert created.json()["status"] == "NotStarted"
    op_url = created.headers["Operation-Location"]
    assert created.headers["Operation-Id"] in op_url
    assert emu.client.get(op_url).json()["status"] == "NotStarted"

    seen, job = _statuses_until_final(emu, "life-1")
    assert seen == ["NotStarted", "Running", "Succeeded"]
    spec_schemas.validate(spec_schemas.BATCH_AVATAR, "BatchSynthesis", job)
    assert emu.client.get(op_url).json() == {
        "id": created.headers["Operation-Id"],
        "status": "Succeeded",
    }
    props = job["properties"]
    assert props["succeededCount"] == 1 and props["failedCount"] == 0
    assert props["durationInMilliseconds"] == 2100  # 6 words * 0.35 s (placeholder model)
    assert props["billingDetails"] == {
        "neuralCharacters": len("One two three four five six."),
        "talkingAvatarDurationSeconds": 2,
    }
    assert job["lastActionDateTime"] > job["createdDateTime"]
    assert "inputs" not in job and job["internalId"]

    url = job["outputs"]["result"]
    assert re.fullmatch(
        re.escape(emu.url)
        + r"/results/batchsynthesis-output/[0-9a-f]{32}/life-1/0001\.mp4\?.*se=\d+.*&sig=.+",
        url,
    )
    video = httpx.get(url)
    assert video.status_code == 200
    assert int(video.headers["content-length"]) == props["sizeInBytes"] == len(video.content)
    part = httpx.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == video.content[:100]
    path = tmp_path / "v.mp4"
    path.write_bytes(video.content)
    info = probe(path)
    assert info.video is not None and info.video.codec == "h264"
    assert abs(info.duration_s - 2.1) < 0.2

    summary = SummaryFile.model_validate(httpx.get(job["outputs"]["summary"]).json())
    assert summary.job_id == job["internalId"] and summary.status == "Succeeded"
    (result,) = summary.results
    assert result.texts == ["One two three four five six."]
    assert re.fullmatch(r"[0-9a-f]{32}/life-1/0001\.mp4", result.video_file_name or "")
    assert result.talking_avatar_character == "lisa"
    assert result.talking_avatar_style == "casual-sitting"
    assert emu.stats()["downloads"] == 3


def test_webm_defaults_and_ssml(emu: Any, tmp_path: Path) -> None:
    ssml = (
        "<speak version='1.0' xml:lang='en-US'><voice name='en-US-AvaMultilingualNeural'>"
        "Hi &amp; welcome.</voice></speak>"
    )
    body = {
        "inputKind": "Ssml",
        "inputs": [{"content": ssml}],
        "avatarConfig": {
            "talkingAvatarCharacter": "lisa",
            "talkingAvatarStyle": "casual-sitting",
            "videoFormat": "webm",
            "videoCodec": "vp9",
            "backgroundColor": "transparent",
        },
    }
    resp = emu.put_job("ssml-1", body)
    assert resp.status_code == 201, resp.text
    cfg = resp.json()["avatarConfig"]
    assert cfg["videoFormat"] == "Webm" and cfg["bitrateKbps"] == 2000
    assert cfg["subtitleType"] == "soft_embedded" and cfg["customized"] is False
    assert resp.json()["inputKind"] == "SSML" and resp.json()["customVoices"] == {}
    job = emu.wait_job("ssml-1")
    assert job["status"] == "Succeeded"
    assert job["outputs"]["result"].split("?")[0].endswith("/ssml-1/0001.webm")
    path = tmp_path / "v.webm"
    path.write_bytes(httpx.get(job["outputs"]["result"]).content)
    info = probe(path)
    assert info.video is not None and info.video.codec == "vp9" and info.video.alpha
    default = emu.put_job(
        "defaults-1",
        {
            **emu.job_body(),
            "avatarConfig": {
                "talkingAvatarCharacter": "lisa",
                "talkingAvatarStyle": "casual-sitting",
            },
        },
    )
    assert default.json()["avatarConfig"]["videoCodec"] == "hevc"
    assert default.json()["properties"] == {"timeToLiveInHours": 744}


def test_paging_follows_next_link(emu: Any) -> None:
    for i in range(5):
        assert emu.put_job(f"page-{i}", emu.job_body()).status_code == 201
    ids: list[str] = []
    url: str | None = f"{emu.url}/avatar/batchsyntheses?api-version={V}&maxpagesize=2"
    pages = 0
    while url:
        page = emu.client.get(url).json()
        spec_schemas.validate(spec_schemas.BATCH_AVATAR, "PaginatedBatchSynthesis", page)
        ids += [j["id"] for j in page["value"]]
        url = page.get("nextLink")
        if url:
            assert url.startswith(f"{emu.url}/avatar/batchsyntheses/?maxpagesize=2&skip=")
        pages += 1
    assert pages == 3
    assert ids == [f"page-{i}" for i in reversed(range(5))]
    last = emu.client.get("/avatar/batchsyntheses", params={"api-version": V, "skip": 4}).json()
    assert [j["id"] for j in last["value"]] == ["page-0"] and "nextLink" not in last
    bad = emu.client.get("/avatar/batchsyntheses", params={"api-version": V, "maxpagesize": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadArgument"


def test_custom_voice_list_filter_and_paging(emu: Any) -> None:
    seed = json.loads(json.dumps(CNV_SEED))
    seed["projects"] += [
        {"id": f"P{i}", "kind": "PersonalVoice", "locale": "de-DE"} for i in range(3)
    ]
    emu.api.seed(seed)
    page = emu.client.get(
        "/customvoice/projects",
        params={"api-version": CV, "maxpagesize": 2, "filter": "kind eq 'PersonalVoice'"},
    ).json()
    assert [p["id"] for p in page["value"]] == ["P0", "P1"]
    rest = emu.client.get(page["nextLink"]).json()
    assert [p["id"] for p in rest["value"]] == ["P2"] and "nextLink" not in rest
    by_project = emu.client.get(
        "/customvoice/endpoints", params={"api-version": CV, "filter": "projectId eq 'Jessica'"}
    )
    assert [e["id"] for e in by_project.json()["value"]] == [EP]
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    none = emu.client.get(
        "/customvoice/models", params={"api-version": CV, "filter": f"createdDateTime gt {later}"}
    )
    assert none.json()["value"] == []
    bad = emu.client.get("/customvoice/models", params={"api-version": CV, "filter": "name eq 1"})
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Ocp-Apim-Subscription-Key": "nope"}, 401),
        ({"Authorization": "Bearer nope"}, 401),
        ({"Ocp-Apim-Subscription-Key": "test-key"}, 200),
        ({"Authorization": "Bearer test-key"}, 200),
    ],
)
def test_auth(emu: Any, headers: dict[str, str], status: int) -> None:
    resp = httpx.get(f"{emu.url}/avatar/batchsyntheses", params={"api-version": V}, headers=headers)
    assert resp.status_code == status
    if status == 401:
        assert resp.json()["error"]["code"] == "Unauthorized"
        assert resp.headers["x-ms-error-code"] == "Unauthorized"


def test_any_key_accepted_without_configured_key(make_emu: Any) -> None:
    emu = make_emu(key=None)
    url = f"{emu.url}/customvoice/endpoints"
    assert (
        httpx.get(
            url, params={"api-version": CV}, headers={"Ocp-Apim-Subscription-Key": "x"}
        ).status_code
        == 200
    )
    assert (
        httpx.get(
            url, params={"api-version": CV}, headers={"Authorization": "Bearer t"}
        ).status_code
        == 200
    )
    assert httpx.get(url, params={"api-version": CV}).status_code == 401


def _mutate(body: dict[str, Any], change: str) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    if change == "no-inputs":
        del body["inputs"]
    elif change == "too-many-inputs":
        body["inputs"] = [{"content": "x"}] * 1001
        body["properties"] = {"destinationContainerUrl": "https://a.blob.core.windows.net/c?sig=x"}
    elif change == "several-inputs-no-destination":
        body["inputs"] = [{"content": "a"}, {"content": "b"}]
    elif change == "plaintext-no-voice":
        del body["synthesisConfig"]
    elif change == "ttl-over-744":
        body["properties"] = {"timeToLiveInHours": 745}
    elif change == "codec-not-in-container":
        body["avatarConfig"] |= {"videoFormat": "webm", "videoCodec": "h264"}
    elif change == "transparent-not-vp9":
        body["avatarConfig"] |= {"backgroundColor": "transparent"}
    elif change == "color-and-image":
        body["avatarConfig"] |= {
            "backgroundColor": "#FFFFFFFF",
            "backgroundImage": "https://example.invalid/bg.png",
        }
    elif change == "no-avatar-config":
        del body["avatarConfig"]
    elif change == "payload-over-500kb":
        body["inputs"] = [{"content": "word " * 110_000}]
    elif change == "bad-custom-voice-id":
        body["customVoices"] = {"X": "a"}
    elif change == "destination-path-alone":
        body["properties"] = {"destinationPath": "x"}
    return body


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ("no-inputs", "inputs"),
        ("too-many-inputs", "1000"),
        ("several-inputs-no-destination", "destinationContainerUrl"),
        ("plaintext-no-voice", "voice"),
        ("ttl-over-744", "744"),
        ("codec-not-in-container", "videoCodec"),
        ("transparent-not-vp9", "transparen"),
        ("color-and-image", "backgroundImage"),
        ("no-avatar-config", "avatarConfig"),
        ("payload-over-500kb", "500"),
        ("bad-custom-voice-id", "customVoices"),
        ("destination-path-alone", "destinationPath"),
    ],
)
def test_documented_rejections(emu: Any, change: str, fragment: str) -> None:
    resp = emu.put_job("rejected-1", _mutate(emu.job_body(), change))
    assert resp.status_code == 400, resp.text
    spec_schemas.validate_response(
        spec_schemas.BATCH_AVATAR, "/batchsyntheses/{id}", "put", 400, resp.json()
    )
    assert resp.json()["error"]["code"] == "BadRequest"
    assert fragment.lower() in resp.text.lower()
    assert emu.get_job("rejected-1").status_code == 404
    assert emu.stats()["jobs_created"] == 0


@pytest.mark.parametrize("job_id", ["a", "bad id!", "-starts-with-dash", "x" * 65])
def test_invalid_job_ids(emu: Any, job_id: str) -> None:
    resp = emu.client.put(
        f"/avatar/batchsyntheses/{job_id}", params={"api-version": V}, json=emu.job_body()
    )
    assert resp.status_code == 400


def test_custom_voice_must_be_a_succeeded_endpoint_here(emu: Any) -> None:
    body = {
        **emu.job_body(),
        "synthesisConfig": {"voice": "JessicaNeural"},
        "customVoices": {"JessicaNeural": EP},
    }
    resp = emu.put_job("cnv-1", body)
    assert resp.status_code == 400 and "not a custom voice endpoint" in resp.text
    seed = json.loads(json.dumps(CNV_SEED))
    seed["endpoints"][0]["status"] = "Disabled"
    emu.api.seed(seed)
    resp = emu.put_job("cnv-1", body)
    assert resp.status_code == 400 and "not successfully deployed" in resp.text
    emu.api.seed(CNV_SEED)
    wrong = {**body, "customVoices": {"OtherNeural": EP}}
    assert emu.put_job("cnv-1", wrong).status_code == 400
    ok = emu.put_job("cnv-1", body)
    assert ok.status_code == 201, ok.text
    assert ok.json()["customVoices"] == {"JessicaNeural": EP}
    job = emu.wait_job("cnv-1")
    assert job["properties"]["billingDetails"]["customNeuralCharacters"] > 0


def test_custom_avatar_must_be_deployed(make_emu: Any) -> None:
    emu = make_emu(time_scale=1.0, avatar_deploy_s=600)
    body = emu.job_body(talkingAvatarCharacter="contoso-ceo", customized=True)
    body["avatarConfig"].pop("talkingAvatarStyle")
    resp = emu.put_job("ca-1", body)
    assert resp.status_code == 400 and "contoso-ceo" in resp.json()["error"]["message"]
    emu.api.create_avatar("contoso-ceo")
    emu.api.deploy_avatar("contoso-ceo")
    resp = emu.put_job("ca-1", body)
    assert resp.status_code == 400 and "not deployed yet" in resp.text
    emu.api.configure(time_scale=0)
    deadline = time.monotonic() + 10
    while (emu.api.get_avatar("contoso-ceo") or {})["deployment"]["status"] != "Succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert emu.put_job("ca-1", body).status_code == 201
    assert emu.wait_job("ca-1")["status"] == "Succeeded"


def test_reput_unknown_get_and_delete(emu: Any) -> None:
    first = emu.put_job("dup-1", emu.job_body())
    assert first.status_code == 201
    # The same request again (a client that lost the 201): the same job, not a second one.
    again = emu.put_job("dup-1", emu.job_body())
    assert again.status_code == 201, again.text
    assert again.json()["internalId"] == first.json()["internalId"]
    assert again.headers["Operation-Id"] == first.headers["Operation-Id"]
    # Another request for the same id: 400, as the spec words it for non-identical requests.
    other = emu.put_job("dup-1", emu.job_body("Something else."))
    assert other.status_code == 400 and "not identical" in other.text
    assert other.json()["error"]["target"] == "id"
    assert emu.stats()["puts_by_job_id"] == {"dup-1": 1}
    job = emu.wait_job("dup-1")
    url = job["outputs"]["result"]
    gone = emu.client.delete("/avatar/batchsyntheses/nope", params={"api-version": V})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "NotFound"
    assert emu.get_job("nope").status_code == 404
    deleted = emu.client.delete("/avatar/batchsyntheses/dup-1", params={"api-version": V})
    assert deleted.status_code == 204 and deleted.content == b""
    assert emu.get_job("dup-1").status_code == 404
    blob = httpx.get(url)
    assert blob.status_code == 404 and b"BlobNotFound" in blob.content
    # A deleted id may be used again.
    assert emu.put_job("dup-1", emu.job_body()).status_code == 201


def test_operation_id_reuse_with_another_request_is_rejected(emu: Any) -> None:
    op = {"Operation-Id": "op-123"}
    first = emu.client.put(
        "/avatar/batchsyntheses/op-a", params={"api-version": V}, json=emu.job_body(), headers=op
    )
    assert first.status_code == 201 and first.headers["Operation-Id"] == "op-123"
    second = emu.client.put(
        "/avatar/batchsyntheses/op-b", params={"api-version": V}, json=emu.job_body(), headers=op
    )
    assert second.status_code == 400 and "Operation-Id" in second.text


def test_ttl_deletes_jobs_and_results(emu: Any) -> None:
    body = {**emu.job_body(), "properties": {"timeToLiveInHours": 0}}
    assert emu.put_job("ttl-0", body).status_code == 201
    kept = {**emu.job_body(), "properties": {"timeToLiveInHours": 1}}
    assert emu.put_job("ttl-1", kept).status_code == 201
    emu.wait_job("ttl-1")
    deadline = time.monotonic() + 30
    while emu.get_job("ttl-0").status_code != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    url = emu.get_job("ttl-1").json()["outputs"]["result"]
    assert httpx.get(url).status_code == 200
    # One hour later (the emulator's clock), the second job is gone with its results too.
    emu.api.set_clock_offset(3601)
    while emu.get_job("ttl-1").status_code != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    results = Path(emu.server.config.state_dir) / "results"
    assert not any(results.rglob("*.mp4"))
    assert emu.stats()["jobs_expired"] == 2


def test_concurrency_cap_keeps_the_rest_waiting(make_emu: Any) -> None:
    emu = make_emu(time_scale=1.0, queue_delay_s=0, render_s_per_video_s=1000, max_running=2)
    for i in range(4):
        assert emu.put_job(f"cap-{i}", emu.job_body()).status_code == 201
    deadline = time.monotonic() + 30
    while emu.stats()["jobs_by_status"].get("Running", 0) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    by_status = emu.stats()["jobs_by_status"]
    assert by_status == {"Running": 2, "NotStarted": 2}
    assert [emu.get_job(f"cap-{i}").json()["status"] for i in range(4)] == [
        "Running",
        "Running",
        "NotStarted",
        "NotStarted",
    ]
    emu.api.configure(time_scale=0)
    assert all(emu.wait_job(f"cap-{i}")["status"] == "Succeeded" for i in range(4))


def test_expired_and_tampered_result_urls(make_emu: Any) -> None:
    emu = make_emu(faults={"p_expired_url": 1.0})
    emu.put_job("exp-1", emu.job_body())
    job = emu.wait_job("exp-1")
    expired = httpx.get(job["outputs"]["result"])
    assert expired.status_code == 403
    assert b"<Code>AuthenticationFailed</Code>" in expired.content
    assert expired.headers["x-ms-error-code"] == "AuthenticationFailed"
    emu.api.set_faults(p_expired_url=0.0)
    fresh = emu.get_job("exp-1").json()["outputs"]["result"]
    assert httpx.get(fresh).status_code == 200
    tampered = re.sub(r"sig=[^&]+", "sig=AAAA", fresh)
    assert httpx.get(tampered).status_code == 403
    assert httpx.get(fresh.split("?")[0]).status_code == 403
    assert emu.stats()["faults_injected"]["expired_url"] >= 2


def test_restart_keeps_jobs_results_and_deployments(make_emu: Any, tmp_path: Path) -> None:
    state = tmp_path / "persist"
    first = make_emu(state_dir=state)
    first.api.create_avatar("ava")
    first.api.deploy_avatar("ava")
    first.put_job("keep-1", first.job_body())
    done = first.wait_job("keep-1")
    first.api.configure(time_scale=1.0, queue_delay_s=1000)
    first.put_job("keep-2", first.job_body())  # waits in NotStarted
    first.api.configure(queue_delay_s=0, render_s_per_video_s=1000)
    deadline = time.monotonic() + 30
    while first.get_job("keep-2").json()["status"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first_url = first.url
    first.close()

    second = make_emu(state_dir=state)  # time_scale 0: the Running job resumes and finishes
    again = second.get_job("keep-1").json()
    assert again["internalId"] == done["internalId"] and again["status"] == "Succeeded"
    assert httpx.get(again["outputs"]["result"]).status_code == 200
    old_url = done["outputs"]["result"].replace(first_url, second.url)
    assert httpx.get(old_url).status_code == 200  # the signing secret persisted
    assert second.wait_job("keep-2")["status"] == "Succeeded"
    assert (second.api.get_avatar("ava") or {})["deployment"]["status"] == "Succeeded"
    assert second.stats()["puts_by_job_id"] == {"keep-1": 1, "keep-2": 1}


@pytest.mark.azurite
def test_destination_container_upload(emu: Any, azurite: Any) -> None:
    from azure.storage.blob import (
        BlobServiceClient,
        ContainerSasPermissions,
        generate_container_sas,
    )

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container(f"dest{int(time.time() * 1000)}")
    sas = generate_container_sas(
        azurite.account_name,
        container.container_name,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(read=True, write=True, create=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    url = f"{azurite.account_url}/{container.container_name}?{sas}"
    body = emu.job_body()
    body["inputs"] = [{"content": "First video."}, {"content": "Second video here."}]
    body["properties"] = {"destinationContainerUrl": url, "destinationPath": "runs/r1"}
    resp = emu.put_job("dest-1", body)
    assert resp.status_code == 201, resp.text
    assert "destinationContainerUrl" not in resp.text and "sig=" not in resp.text
    job = emu.wait_job("dest-1")
    assert job["status"] == "Succeeded", job
    assert job["outputs"] == {
        "result": "runs/r1/dest-1/0001.mp4",
        "summary": "runs/r1/dest-1/summary.json",
    }
    assert job["properties"]["succeededCount"] == 2
    names = sorted(b.name for b in container.list_blobs(name_starts_with="runs/r1/dest-1/"))
    assert names == [
        "runs/r1/dest-1/0001.mp4",
        "runs/r1/dest-1/0002.mp4",
        "runs/r1/dest-1/summary.json",
    ]
    summary = json.loads(container.download_blob("runs/r1/dest-1/summary.json").readall())
    assert [r["texts"] for r in summary["results"]] == [["First video."], ["Second video here."]]
    size = sum(container.get_blob_client(n).get_blob_properties().size for n in names[:2])
    assert size == job["properties"]["sizeInBytes"]

    # A SAS without write permission: the job fails with the reason, the SAS never shows.
    ro = generate_container_sas(
        azurite.account_name,
        container.container_name,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    body["properties"] = {
        "destinationContainerUrl": f"{azurite.account_url}/{container.container_name}?{ro}"
    }
    emu.put_job("dest-2", body)
    failed = emu.wait_job("dest-2")
    assert failed["status"] == "Failed"
    assert failed["properties"]["error"]["code"] == "InvalidDestination"
    assert "sig=" not in json.dumps(failed) or "sig=***" in json.dumps(failed)
