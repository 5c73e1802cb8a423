"""Request bodies the client builds validate against the official JSON schemas, and every
pre-flight rejection of ``BatchSynthesis.to_request`` fires before anything is sent."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest
import spec_schemas

from avatarpipe.errors import RequestValidationError
from avatarpipe.speech.models import BatchSynthesis, Endpoint

CONTAINER = "https://acct.blob.core.windows.net/out?sv=2023-01-03&sp=rwl&sig=CONTAINERSECRET"
UUID = "9f50c644-2121-40e9-9ea7-544e48bfe3cb"

SSML = (
    "<speak version='1.0' xml:lang='en-US'><voice name='en-US-AvaMultilingualNeural'>"
    "Hello <bookmark mark='gesture.hello'/> world.</voice></speak>"
)

SHAPES: dict[str, dict[str, Any]] = {
    "plain_text": {
        "inputKind": "PlainText",
        "inputs": [{"content": "Hi, I'm a virtual assistant created by Microsoft."}],
        "synthesisConfig": {"voice": "en-US-AvaMultilingualNeural", "rate": "+10%"},
        "avatarConfig": {"talkingAvatarCharacter": "lisa", "talkingAvatarStyle": "casual-sitting"},
    },
    "ssml": {
        "inputKind": "SSML",
        "inputs": [{"content": SSML}],
        "avatarConfig": {
            "talkingAvatarCharacter": "lisa",
            "talkingAvatarStyle": "graceful-sitting",
            "videoFormat": "mp4",
            "videoCodec": "h264",
            "subtitleType": "soft_embedded",
            "backgroundColor": "#FFFFFFFF",
            "bitrateKbps": 4000,
        },
        "properties": {"timeToLiveInHours": 48},
    },
    "multi_input_container": {
        "inputKind": "SSML",
        "description": "three scenes, one job",
        "inputs": [{"content": SSML}, {"content": SSML}, {"content": SSML}],
        "avatarConfig": {"talkingAvatarCharacter": "harry", "talkingAvatarStyle": "business"},
        "properties": {
            "destinationContainerUrl": CONTAINER,
            "destinationPath": "runs/2024-q3",
            "timeToLiveInHours": 744,
        },
    },
    "webm_vp9_transparent": {
        "inputKind": "PlainText",
        "inputs": [{"content": "Transparent background."}],
        "synthesisConfig": {"voice": "en-US-AvaMultilingualNeural"},
        "avatarConfig": {
            "talkingAvatarCharacter": "lisa",
            "talkingAvatarStyle": "casual-sitting",
            "videoFormat": "webm",
            "videoCodec": "vp9",
            "backgroundColor": "#00000000",
        },
    },
    "custom_voices": {
        "inputKind": "SSML",
        "inputs": [
            {
                "content": "<speak version='1.0' xml:lang='en-US'><voice name='ContosoCeoNeural'>"
                "Welcome.</voice></speak>"
            }
        ],
        "customVoices": {"ContosoCeoNeural": UUID},
        "avatarConfig": {"talkingAvatarCharacter": "lisa", "talkingAvatarStyle": "casual-sitting"},
    },
    "video_crop": {
        "inputKind": "PlainText",
        "inputs": [{"content": "Cropped."}],
        "synthesisConfig": {"voice": "en-US-AvaMultilingualNeural"},
        "avatarConfig": {
            "talkingAvatarCharacter": "lisa",
            "talkingAvatarStyle": "casual-sitting",
            "videoCrop": {"topLeft": {"x": 560, "y": 0}, "bottomRight": {"x": 1360, "y": 1080}},
            "backgroundImage": "https://example.com/bg.png",
        },
    },
    "custom_avatar": {
        "inputKind": "SSML",
        "inputs": [
            {
                "content": "<speak version='1.0' xml:lang='en-US'><voice name='ContosoCeoNeural'>"
                "Quarterly update.</voice></speak>"
            }
        ],
        "customVoices": {"ContosoCeoNeural": UUID},
        "avatarConfig": {
            "talkingAvatarCharacter": "contoso-ceo",
            "customized": True,
            "videoFormat": "mp4",
            "videoCodec": "hevc",
            "subtitleType": "none",
        },
    },
}

BATCH_VERSIONS = [spec_schemas.BATCH_AVATAR, spec_schemas.BATCH_AVATAR_PREVIEW]
VOICE_VERSIONS = [spec_schemas.CUSTOM_VOICE, spec_schemas.CUSTOM_VOICE_PREVIEW]


def _created(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    body.pop("inputs", None)
    job_id = request.url.path.rsplit("/", 1)[-1]
    body.update(id=job_id, status="NotStarted", createdDateTime="2024-03-15T10:28:23Z")
    return httpx.Response(201, json=body, headers={"Operation-Id": "op-1"})


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_create_synthesis_body_validates_against_spec(name: str, make_client: Any) -> None:
    client, service = make_client(_created)
    job = BatchSynthesis.model_validate(SHAPES[name])
    created = client.batch.create_synthesis(f"job-{name.replace('_', '-')}", job)
    assert created.status is not None
    (request,) = service.requests
    assert request.method == "PUT"
    assert request.url.path == f"/avatar/batchsyntheses/job-{name.replace('_', '-')}"
    assert request.url.params["api-version"] == "2024-08-01"
    body = json.loads(request.content)
    for version in BATCH_VERSIONS:
        spec_schemas.validate(version, "BatchSynthesis", body)
    # Nothing read-only is sent; what we set is sent as given.
    assert not {"id", "status", "outputs", "createdDateTime"} & body.keys()
    assert body["inputs"] == SHAPES[name]["inputs"]
    assert (
        body["avatarConfig"]["talkingAvatarCharacter"]
        == (SHAPES[name]["avatarConfig"]["talkingAvatarCharacter"])
    )


def test_create_endpoint_body_validates_against_spec(make_client: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(
            201,
            json={
                **body,
                "id": UUID,
                "status": "NotStarted",
                "properties": {"kind": "HighPerformance"},
            },
        )

    client, service = make_client(handler)
    endpoint = Endpoint(
        project_id="Jessica",
        model_id="Jessica",
        display_name="Jessica endpoint",
        description="Endpoint for Jessica voice",
    )
    created = client.voice.create_endpoint(UUID, endpoint)
    assert created.id == UUID
    (request,) = service.requests
    assert request.url.path == f"/customvoice/endpoints/{UUID}"
    assert request.url.params["api-version"] == "2026-01-01"
    body = json.loads(request.content)
    for version in VOICE_VERSIONS:
        spec_schemas.validate(version, "Endpoint", body)
    assert body == {
        "projectId": "Jessica",
        "modelId": "Jessica",
        "displayName": "Jessica endpoint",
        "description": "Endpoint for Jessica voice",
    }


def test_request_shape_count() -> None:
    shapes = len(SHAPES) + 1
    print(f"\nrequest shapes validated against the spec schemas: {shapes}")
    assert shapes == 8


def test_schema_validator_is_real() -> None:
    """The validator does reject a wrong body (so the passes above mean something)."""
    with pytest.raises(jsonschema.ValidationError):
        spec_schemas.validate(spec_schemas.BATCH_AVATAR, "BatchSynthesis", {"inputKind": "Text"})


# ---------------------------------------------------------------- pre-flight rejections


def _job(**changes: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(SHAPES["plain_text"]))
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def _avatar(**extra: Any) -> dict[str, Any]:
    return {"talkingAvatarCharacter": "lisa", "talkingAvatarStyle": "casual-sitting", **extra}


REJECTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "no_inputs": (_job(inputs=[]), "inputs"),
    "1001_inputs": (
        _job(
            inputs=[{"content": f"line {i}"} for i in range(1001)],
            properties={"destinationContainerUrl": CONTAINER},
        ),
        "1000",
    ),
    "multi_input_without_container": (
        _job(inputs=[{"content": "a"}, {"content": "b"}]),
        "destinationContainerUrl",
    ),
    "plain_text_without_voice": (_job(synthesisConfig=None), "synthesisConfig.voice"),
    "ttl_745": (_job(properties={"timeToLiveInHours": 745}), "timeToLiveInHours"),
    "mp4_vp9": (_job(avatarConfig=_avatar(videoFormat="mp4", videoCodec="vp9")), "vp9"),
    "webm_h264": (_job(avatarConfig=_avatar(videoFormat="webm", videoCodec="h264")), "h264"),
    "transparent_mp4": (
        _job(
            avatarConfig=_avatar(
                videoFormat="mp4", videoCodec="h264", backgroundColor="transparent"
            )
        ),
        "transparency",
    ),
    "payload_over_500kb": (
        _job(
            inputs=[{"content": "x" * 300_000}, {"content": "y" * 300_000}],
            properties={"destinationContainerUrl": CONTAINER},
        ),
        "500 KB",
    ),
}


@pytest.mark.parametrize("name", sorted(REJECTIONS))
def test_to_request_rejects(name: str, make_client: Any) -> None:
    body, needle = REJECTIONS[name]
    job = BatchSynthesis.model_validate(body)
    with pytest.raises(RequestValidationError, match=needle):
        job.to_request()
    client, service = make_client(_created)
    with pytest.raises(RequestValidationError):
        client.batch.create_synthesis("valid-id", job)
    assert service.requests == [], "nothing is sent for a request the service would reject"


@pytest.mark.parametrize(
    "bad_id", ["ab", "-leading-dash", "has space", "a" * 65, "trailing.", "ümlaut"]
)
def test_bad_job_id_rejected_before_sending(bad_id: str, make_client: Any) -> None:
    client, service = make_client(_created)
    job = BatchSynthesis.model_validate(SHAPES["plain_text"])
    with pytest.raises(RequestValidationError, match="job id"):
        client.batch.create_synthesis(bad_id, job)
    with pytest.raises(RequestValidationError, match="job id"):
        client.batch.get_synthesis(bad_id)
    assert service.requests == []


def test_bad_endpoint_id_rejected_before_sending(make_client: Any) -> None:
    client, service = make_client(_created)
    endpoint = Endpoint(project_id="Jessica", model_id="Jessica")
    with pytest.raises(RequestValidationError, match="UUID"):
        client.voice.create_endpoint("not-a-uuid", endpoint)
    with pytest.raises(RequestValidationError, match="UUID"):
        client.voice.suspend_endpoint("Jessica")
    assert service.requests == []
