"""The emulator's own request models, checked against the committed contract.

The emulator does not reuse the client's wire models (``avatarpipe.speech``): a bug there would
then be invisible on both sides. Enum values, required fields and read-only fields come from the
contract (:mod:`avatarpipe.emulator.contract`) at import; the rules the specs only state in prose
(payload size, input counts, codec pairs ...) are written here from Microsoft's docs.
``tests/emulator/test_models.py`` checks that every field here exists in the contract.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from avatarpipe.emulator import contract
from avatarpipe.emulator.apierror import bad_request

__all__ = [
    "ALLOWED_CODECS",
    "BATCH_CONTRACT",
    "CV_CONTRACT",
    "EXTRA_AVATAR_FIELDS",
    "MAX_INPUTS",
    "MAX_PAYLOAD_BYTES",
    "MAX_TTL_HOURS",
    "AvatarConfig",
    "EndpointBody",
    "JobBody",
    "ModelBody",
    "ProjectBody",
    "check_resource_id",
    "job_request",
    "pydantic_message",
    "validate_body",
]

BATCH_CONTRACT = "batch-avatar/2024-08-01"
CV_CONTRACT = "custom-voice/2026-01-01"
MAX_INPUTS = 1000
MAX_PAYLOAD_BYTES = 500 * 1024
MAX_TTL_HOURS = 744
# Accepted by the service although the 2024-08-01 spec does not list them (docs and samples).
EXTRA_AVATAR_FIELDS = {"useBuiltInVoice", "photoAvatarBaseModel"}
VIDEO_FORMATS = ("mp4", "webm")
VIDEO_CODECS = ("h264", "hevc", "vp9", "av1")
SUBTITLE_TYPES = ("external_file", "soft_embedded", "hard_embedded", "none")
ALLOWED_CODECS = {"mp4": ("h264", "hevc", "av1"), "webm": ("vp9", "av1")}

M = TypeVar("M", bound=BaseModel)
_ID = contract.spec(BATCH_CONTRACT)["definitions"]["ResourceId"]
_RESOURCE_ID = re.compile(_ID["pattern"])


def check_resource_id(value: str, what: str = "id", target: str | None = None) -> str:
    """Check an id against the contract's ``ResourceId`` pattern (3-64 characters).

    Args:
        value: The id.
        what: What the id names, for the message.
        target: ``error.target`` of the 400.

    Returns:
        The id.

    Raises:
        ApiError: 400 when it does not match.
    """
    if not (_ID["minLength"] <= len(value) <= _ID["maxLength"]) or not _RESOURCE_ID.match(value):
        raise bad_request(
            f"{what} {value!r} is invalid: use 3-64 letters, digits, '.', '-' or '_', "
            "starting and ending with a letter or digit",
            target,
        )
    return value


def _read_only(version: str, definition: str) -> set[str]:
    props = contract.spec(version)["definitions"][definition]["properties"]
    return {name for name, schema in props.items() if schema.get("readOnly")}


def _canonical(value: object, allowed: tuple[str, ...], what: str) -> str:
    """The allowed spelling of ``value``, matched case-insensitively (the service does)."""
    if isinstance(value, str):
        for name in allowed:
            if name.lower() == value.lower():
                return name
    raise ValueError(f"{what} must be one of {', '.join(allowed)}")


class _Body(BaseModel):
    """camelCase on the wire; unknown fields kept (the service ignores or echoes them)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class Coordinate(_Body):
    """``{x, y}``."""

    x: float
    y: float


class VideoCrop(_Body):
    """``videoCrop``."""

    top_left: Coordinate
    bottom_right: Coordinate


class AvatarConfig(_Body):
    """``avatarConfig`` of a create request."""

    talking_avatar_character: str = Field(min_length=1)
    talking_avatar_style: str | None = None
    customized: bool | None = None
    video_format: str | None = None
    video_codec: str | None = None
    subtitle_type: str | None = None
    background_color: str | None = None
    background_image: str | None = None
    avatar_position: Coordinate | None = None
    avatar_size: Coordinate | None = None
    resolution: Coordinate | None = None
    video_crop: VideoCrop | None = None
    bitrate_kbps: int | None = Field(default=None, gt=0)
    use_built_in_voice: bool | None = None
    photo_avatar_base_model: str | None = None

    @field_validator("video_format")
    @classmethod
    def _format(cls, v: str | None) -> str | None:
        return None if v is None else _canonical(v, VIDEO_FORMATS, "videoFormat")

    @field_validator("video_codec")
    @classmethod
    def _codec(cls, v: str | None) -> str | None:
        return None if v is None else _canonical(v, VIDEO_CODECS, "videoCodec")

    @field_validator("subtitle_type")
    @classmethod
    def _subtitles(cls, v: str | None) -> str | None:
        return None if v is None else _canonical(v, SUBTITLE_TYPES, "subtitleType")

    @property
    def transparent(self) -> bool:
        """Whether the background colour asks for transparency (alpha below FF)."""
        color = (self.background_color or "").strip().lower()
        if color == "transparent":
            return True
        return bool(re.fullmatch(r"#[0-9a-f]{8}", color)) and color[-2:] != "ff"


class SynthesisConfig(_Body):
    """``synthesisConfig``; ``voice`` may be left out only with a custom avatar's own voice."""

    voice: str | None = None
    style: str | None = None
    rate: str | None = None
    pitch: str | None = None
    volume: str | None = None


class JobInput(_Body):
    """One input."""

    content: str = Field(min_length=1)


class JobProperties(_Body):
    """``properties`` (the writable ones)."""

    time_to_live_in_hours: int | None = Field(default=None, ge=0)
    destination_container_url: str | None = None
    destination_path: str | None = None


class JobBody(_Body):
    """The body of ``PUT /avatar/batchsyntheses/{id}``."""

    description: str | None = None
    input_kind: str
    inputs: list[JobInput] | None = None
    synthesis_config: SynthesisConfig | None = None
    custom_voices: dict[str, str] | None = None
    properties: JobProperties | None = None
    avatar_config: AvatarConfig

    @field_validator("input_kind", mode="before")
    @classmethod
    def _kind(cls, v: object) -> str:
        return _canonical(v, contract.enum_values(BATCH_CONTRACT, "InputKind"), "inputKind")


class ProjectBody(_Body):
    """A custom voice project (``PUT /customvoice/projects/{id}``, seeds)."""

    display_name: str | None = None
    description: str | None = None
    kind: str
    locale: str | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, v: object) -> str:
        return _canonical(v, contract.enum_values(CV_CONTRACT, "ProjectKind"), "kind")


class _WithStatus(_Body):
    """A custom voice object with a ``status`` (given in seeds; the contract's ``Status``)."""

    status: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: object) -> str | None:
        return None if v is None else _canonical(v, _CV_STATUSES, "status")


class Recipe(_Body):
    """A model's recipe."""

    kind: str | None = None
    version: str | None = None


class ModelBody(_WithStatus):
    """A custom voice model (``PUT /customvoice/models/{id}``, seeds)."""

    voice_name: str | None = None
    description: str | None = None
    recipe: Recipe | None = None
    locale: str | None = None
    project_id: str | None = None
    consent_id: str | None = None
    training_set_id: str | None = None
    properties: dict[str, Any] | None = None


class EndpointProperties(_Body):
    """An endpoint's ``properties``."""

    kind: str | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, v: object) -> str | None:
        return None if v is None else _canonical(v, _ENDPOINT_KINDS, "kind")


class EndpointBody(_WithStatus):
    """A custom voice endpoint (``PUT /customvoice/endpoints/{uuid}``, seeds)."""

    display_name: str | None = None
    description: str | None = None
    project_id: str
    model_id: str
    properties: EndpointProperties | None = None


_CV_STATUSES = contract.enum_values(CV_CONTRACT, "Status")
_ENDPOINT_KINDS = contract.enum_values(CV_CONTRACT, "EndpointKind")
_JOB_READ_ONLY = _read_only(BATCH_CONTRACT, "BatchSynthesis") | {"internalId"}
_PROPERTIES_READ_ONLY = _read_only(BATCH_CONTRACT, "BatchSynthesisProperties")


def pydantic_message(exc: ValidationError) -> tuple[str, str]:
    """``("loc: msg", "loc")`` of the first error, the way the service names a field."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    return (f"{loc}: {msg}" if loc else msg), loc


def validate_body(model: type[M], body: dict[str, Any], prefix: str = "") -> M:
    """Validate ``body`` as ``model``.

    Args:
        model: The request model.
        body: The JSON object.
        prefix: Put before the message (seeds name the item: ``"seed: models[0]: "``).

    Returns:
        The validated model.

    Raises:
        ApiError: 400 naming the first invalid field.
    """
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        message, loc = pydantic_message(exc)
        raise bad_request(prefix + message, None if prefix else (loc or None)) from None


def job_request(body: dict[str, Any]) -> dict[str, Any]:
    """Validate a create body and return the request as stored (read-only fields left out).

    The checks are those the service answers with a 400: 1..1000 inputs,
    ``destinationContainerUrl`` for several inputs, ``destinationPath`` only with it, a voice for
    PlainText (unless a custom avatar speaks with its own voice, ``useBuiltInVoice``), TTL <= 744
    h, the allowed format/codec pairs, transparency only with webm + vp9, a background colour or
    image (not both), ``customVoices`` ids, and a 500 KB payload.

    Raises:
        ApiError: 400 with a one-line message naming the field.
    """
    job = validate_body(JobBody, {k: v for k, v in body.items() if k not in _JOB_READ_ONLY})
    _check_job(job)
    request = job.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(body.get("properties"), dict):
        props = {k: v for k, v in body["properties"].items() if k not in _PROPERTIES_READ_ONLY}
        request["properties"] = validate_body(JobProperties, props).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
    size = len(json.dumps(request).encode())
    if size > MAX_PAYLOAD_BYTES:
        raise bad_request(
            f"request body is {size // 1024} KB, over the service's 500 KB limit: "
            "split the inputs into more jobs"
        )
    return request


def _check_job(job: JobBody) -> None:
    inputs = job.inputs or []
    if not inputs:
        raise bad_request("inputs: at least one input is required")
    if len(inputs) > MAX_INPUTS:
        raise bad_request(
            f"inputs: {len(inputs)} inputs, the service allows at most {MAX_INPUTS} per job"
        )
    props = job.properties or JobProperties()
    if len(inputs) > 1 and not props.destination_container_url:
        raise bad_request(
            "properties.destinationContainerUrl: required when a job has more than one input"
        )
    if props.destination_path and not props.destination_container_url:
        raise bad_request(
            "properties.destinationPath: only valid with properties.destinationContainerUrl"
        )
    _check_voice(job)
    ttl = props.time_to_live_in_hours
    if ttl is not None and ttl > MAX_TTL_HOURS:
        raise bad_request(
            f"properties.timeToLiveInHours: {ttl} is over the maximum of {MAX_TTL_HOURS}"
        )
    _check_video(job.avatar_config)
    for name, deployment in (job.custom_voices or {}).items():
        if not name.strip():
            raise bad_request("customVoices: a voice name is empty")
        check_resource_id(deployment, f"customVoices[{name!r}] deployment id")


def _check_voice(job: JobBody) -> None:
    avatar = job.avatar_config
    if avatar.use_built_in_voice and not avatar.customized:
        raise bad_request(
            "avatarConfig.useBuiltInVoice: only valid with a custom avatar (customized: true)",
            "avatarConfig.useBuiltInVoice",
        )
    voice = job.synthesis_config.voice if job.synthesis_config else None
    if job.input_kind == "PlainText" and not voice and not avatar.use_built_in_voice:
        raise bad_request("synthesisConfig.voice: required for PlainText inputs")


def _check_video(avatar: AvatarConfig) -> None:
    fmt, codec = avatar.video_format or "mp4", avatar.video_codec or "hevc"
    if codec not in ALLOWED_CODECS[fmt]:
        raise bad_request(
            f"avatarConfig.videoCodec: {codec} is not allowed in {fmt} "
            f"(allowed: {', '.join(ALLOWED_CODECS[fmt])})"
        )
    color = avatar.background_color
    if color is not None and not re.fullmatch(r"(?i)transparent|#[0-9a-f]{8}|#[0-9a-f]{6}", color):
        raise bad_request(
            f"avatarConfig.backgroundColor: {color!r} is not #RRGGBBAA or 'transparent'"
        )
    if avatar.transparent and (fmt, codec) != ("webm", "vp9"):
        raise bad_request(
            "avatarConfig.backgroundColor: transparency needs videoFormat webm with videoCodec vp9"
        )
    if avatar.background_color and avatar.background_image:
        raise bad_request("avatarConfig: set backgroundColor or backgroundImage, not both")
