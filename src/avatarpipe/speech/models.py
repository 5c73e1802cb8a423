"""Pydantic models of the batch avatar (``2024-08-01``) and custom voice (``2026-01-01``) APIs.

Field names are snake_case in Python and camelCase on the wire (``model_dump(by_alias=True)``).
Responses are parsed tolerantly: unknown fields (the service sends ``internalId``,
``useBuiltInVoice`` and others outside the spec) are kept, never rejected, and enum values are
matched case-insensitively (responses echo ``videoFormat`` as ``Mp4``). Requests are checked by
:meth:`BatchSynthesis.to_request`, which raises :class:`RequestValidationError` for everything the
service would otherwise reject with a 400.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from avatarpipe.errors import RequestValidationError

__all__ = [
    "AvatarCoordinate",
    "BatchAvatarConfig",
    "BatchSynthesis",
    "BatchSynthesisBillingDetails",
    "BatchSynthesisConfig",
    "BatchSynthesisError",
    "BatchSynthesisInput",
    "BatchSynthesisOutputs",
    "BatchSynthesisProperties",
    "CustomVoiceStatus",
    "Endpoint",
    "EndpointKind",
    "EndpointProperties",
    "ErrorDetail",
    "ErrorResponse",
    "InputKind",
    "MAX_INPUTS",
    "MAX_PAYLOAD_BYTES",
    "MAX_TTL_HOURS",
    "Model",
    "ModelProperties",
    "Operation",
    "OperationStatus",
    "Page",
    "Project",
    "ProjectKind",
    "RESOURCE_ID_PATTERN",
    "Recipe",
    "Status",
    "SubtitleType",
    "SummaryFile",
    "SummaryResult",
    "VideoCodec",
    "VideoCrop",
    "VideoFormat",
    "ALLOWED_CODECS",
    "check_resource_id",
]

RESOURCE_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,62}[a-zA-Z0-9]$"
"""Job, project, model and operation ids (3-64 characters), from the spec's ``ResourceId``."""
_RESOURCE_ID = re.compile(RESOURCE_ID_PATTERN)
MAX_INPUTS = 1000
MAX_PAYLOAD_BYTES = 500 * 1024
MAX_TTL_HOURS = 744
DEFAULT_TTL_HOURS = (
    744  # the spec says 774 in one place: a typo (see reference/azure-speech-api.md)
)


def check_resource_id(value: str, what: str = "id") -> str:
    """Check an id against the service's ``ResourceId`` pattern.

    Args:
        value: The id.
        what: What the id names, for the message.

    Returns:
        The id unchanged.

    Raises:
        RequestValidationError: The id does not match the pattern.
    """
    if not _RESOURCE_ID.match(value):
        raise RequestValidationError(
            f"{what} {value!r} is invalid: use 3-64 letters, digits, '.', '-' or '_', "
            "starting and ending with a letter or digit"
        )
    return value


class _CaseInsensitiveEnum(StrEnum):
    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            for member in cls:
                if member.value.lower() == value.lower():
                    return member
        return None


class Status(_CaseInsensitiveEnum):
    """Status of a batch synthesis job."""

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def is_final(self) -> bool:
        """Whether the job will not change any more."""
        return self in (Status.SUCCEEDED, Status.FAILED)


OperationStatus = Status


class CustomVoiceStatus(_CaseInsensitiveEnum):
    """Status of a custom voice resource (project, model, endpoint)."""

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    DISABLING = "Disabling"
    DISABLED = "Disabled"


class InputKind(_CaseInsensitiveEnum):
    """What the inputs hold (the service accepts any case, e.g. ``Ssml``)."""

    PLAIN_TEXT = "PlainText"
    SSML = "SSML"


class VideoFormat(_CaseInsensitiveEnum):
    """Container; requests send lower case, responses echo ``Mp4``/``Webm``."""

    MP4 = "mp4"
    WEBM = "webm"


class VideoCodec(_CaseInsensitiveEnum):
    """Video codec."""

    H264 = "h264"
    HEVC = "hevc"
    VP9 = "vp9"
    AV1 = "av1"


class SubtitleType(_CaseInsensitiveEnum):
    """How subtitles are delivered."""

    EXTERNAL_FILE = "external_file"
    SOFT_EMBEDDED = "soft_embedded"
    HARD_EMBEDDED = "hard_embedded"
    NONE = "none"


ALLOWED_CODECS: dict[VideoFormat, tuple[VideoCodec, ...]] = {
    VideoFormat.MP4: (VideoCodec.H264, VideoCodec.HEVC, VideoCodec.AV1),
    VideoFormat.WEBM: (VideoCodec.VP9, VideoCodec.AV1),
}


class ProjectKind(_CaseInsensitiveEnum):
    """Kind of custom voice project."""

    PROFESSIONAL_VOICE = "ProfessionalVoice"
    PERSONAL_VOICE = "PersonalVoice"


class EndpointKind(_CaseInsensitiveEnum):
    """Kind of custom voice endpoint."""

    HIGH_PERFORMANCE = "HighPerformance"
    FAST_RESUME = "FastResume"


class _Wire(BaseModel):
    """Base: camelCase on the wire, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", use_enum_values=False
    )

    def wire(self) -> dict[str, Any]:
        """Return the JSON-ready dict with camelCase keys and unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# ---------------------------------------------------------------- errors


class ErrorDetail(_Wire):
    """The service's ``error`` object."""

    code: str
    message: str
    target: str | None = None
    details: list[ErrorDetail] | None = None
    innererror: dict[str, Any] | None = None


class ErrorResponse(_Wire):
    """The body of every error response: ``{"error": {...}}``."""

    error: ErrorDetail


# ---------------------------------------------------------------- batch avatar


class AvatarCoordinate(_Wire):
    """An ``{x, y}`` pair."""

    x: float
    y: float


class VideoCrop(_Wire):
    """``videoCrop``: the part of the frame kept."""

    top_left: AvatarCoordinate
    bottom_right: AvatarCoordinate


class BatchAvatarConfig(_Wire):
    """``avatarConfig``."""

    talking_avatar_character: str = Field(min_length=1)
    talking_avatar_style: str | None = None
    customized: bool | None = None
    video_format: VideoFormat | None = None
    video_codec: VideoCodec | None = None
    subtitle_type: SubtitleType | None = None
    background_color: str | None = None
    background_image: str | None = None
    avatar_position: AvatarCoordinate | None = None
    avatar_size: AvatarCoordinate | None = None
    resolution: AvatarCoordinate | None = None
    video_crop: VideoCrop | None = None
    bitrate_kbps: int | None = Field(default=None, gt=0)
    use_built_in_voice: bool | None = None
    photo_avatar_base_model: str | None = None

    @property
    def effective_format(self) -> VideoFormat:
        """The container, with the service default (mp4) filled in."""
        return self.video_format or VideoFormat.MP4

    @property
    def effective_codec(self) -> VideoCodec:
        """The codec, with the service default (hevc) filled in."""
        return self.video_codec or VideoCodec.HEVC

    @property
    def transparent(self) -> bool:
        """Whether the background colour asks for transparency (alpha below FF)."""
        color = (self.background_color or "").strip().lower()
        if color == "transparent":
            return True
        return bool(re.fullmatch(r"#[0-9a-f]{8}", color)) and color[-2:] != "ff"


class BatchSynthesisConfig(_Wire):
    """``synthesisConfig`` (PlainText inputs only)."""

    voice: str = Field(min_length=1)
    style: str | None = None
    rate: str | None = None
    pitch: str | None = None
    volume: str | None = None


class BatchSynthesisInput(_Wire):
    """One input: plain text or an SSML document."""

    content: str = Field(min_length=1)


class BatchSynthesisError(_Wire):
    """A failed job's ``properties.error``."""

    code: str | None = None
    message: str | None = None


class BatchSynthesisBillingDetails(_Wire):
    """``properties.billingDetails``."""

    neural_characters: int | None = None
    custom_neural_characters: int | None = None
    aoai_characters: int | None = None
    aoai_hd_characters: int | None = Field(
        default=None, validation_alias=AliasChoices("aoaiHDCharacters", "aoai_hd_characters")
    )
    talking_avatar_duration_seconds: int | None = None

    def wire(self) -> dict[str, Any]:
        """Return the JSON-ready dict (``aoaiHDCharacters`` spelled as the spec does)."""
        data = super().wire()
        if "aoaiHdCharacters" in data:
            data["aoaiHDCharacters"] = data.pop("aoaiHdCharacters")
        return data


class BatchSynthesisProperties(_Wire):
    """``properties``: settings in, progress and results out."""

    time_to_live_in_hours: int | None = Field(default=None, ge=0)
    destination_container_url: str | None = None
    destination_path: str | None = None
    size_in_bytes: int | None = None
    succeeded_count: int | None = None
    failed_count: int | None = None
    duration_in_milliseconds: int | None = None
    billing_details: BatchSynthesisBillingDetails | None = None
    error: BatchSynthesisError | None = None


class BatchSynthesisOutputs(_Wire):
    """``outputs``: signed URLs, or relative paths with ``destinationContainerUrl``."""

    result: str | None = Field(default=None, repr=False)  # holds a SAS signature
    summary: str | None = Field(default=None, repr=False)


_READ_ONLY_JOB_FIELDS = {
    "id",
    "status",
    "created_date_time",
    "last_action_date_time",
    "outputs",
    "internal_id",
}
_READ_ONLY_PROPERTIES = {
    "size_in_bytes",
    "succeeded_count",
    "failed_count",
    "duration_in_milliseconds",
    "billing_details",
    "error",
}


class BatchSynthesis(_Wire):
    """A batch avatar synthesis job, as sent (PUT body) and as returned (GET)."""

    id: str | None = None
    description: str | None = None
    input_kind: InputKind
    inputs: list[BatchSynthesisInput] | None = None
    synthesis_config: BatchSynthesisConfig | None = None
    custom_voices: dict[str, str] | None = None
    properties: BatchSynthesisProperties | None = None
    avatar_config: BatchAvatarConfig
    outputs: BatchSynthesisOutputs | None = None
    status: Status | None = None
    created_date_time: datetime | None = None
    last_action_date_time: datetime | None = None
    internal_id: str | None = None

    def to_request(self) -> dict[str, Any]:
        """Validate this job as a create request and return the PUT body.

        Read-only fields are left out. The checks are those the service would otherwise answer
        with a 400: 1..1000 inputs, ``destinationContainerUrl`` for several inputs, a voice for
        PlainText, TTL <= 744 h, allowed format/codec pairs, transparency only with webm+vp9,
        background colour or image (not both), ``customVoices`` ids, and a 500 KB payload.

        Returns:
            The JSON body, camelCase.

        Raises:
            RequestValidationError: The service would reject this request; the message says why.
        """
        inputs = self.inputs or []
        if not inputs:
            raise RequestValidationError("inputs: at least one input is required")
        if len(inputs) > MAX_INPUTS:
            raise RequestValidationError(
                f"inputs: {len(inputs)} inputs, the service allows at most {MAX_INPUTS} per job"
            )
        props = self.properties or BatchSynthesisProperties()
        if len(inputs) > 1 and not props.destination_container_url:
            raise RequestValidationError(
                "properties.destinationContainerUrl: required when a job has more than one input"
            )
        if props.destination_path and not props.destination_container_url:
            raise RequestValidationError(
                "properties.destinationPath: only valid with properties.destinationContainerUrl"
            )
        built_in = bool(self.avatar_config.use_built_in_voice and self.avatar_config.customized)
        if (
            self.input_kind == InputKind.PLAIN_TEXT
            and not built_in
            and not (self.synthesis_config and self.synthesis_config.voice)
        ):
            raise RequestValidationError("synthesisConfig.voice: required for PlainText inputs")
        ttl = props.time_to_live_in_hours
        if ttl is not None and ttl > MAX_TTL_HOURS:
            raise RequestValidationError(
                f"properties.timeToLiveInHours: {ttl} is over the maximum of {MAX_TTL_HOURS}"
            )
        avatar = self.avatar_config
        fmt, codec = avatar.effective_format, avatar.effective_codec
        if codec not in ALLOWED_CODECS[fmt]:
            allowed = ", ".join(c.value for c in ALLOWED_CODECS[fmt])
            raise RequestValidationError(
                f"avatarConfig.videoCodec: {codec.value} is not allowed in {fmt.value} "
                f"(allowed: {allowed})"
            )
        color = avatar.background_color
        if color is not None and not re.fullmatch(
            r"(?i)transparent|#[0-9a-f]{8}|#[0-9a-f]{6}", color
        ):
            raise RequestValidationError(
                f"avatarConfig.backgroundColor: {color!r} is not #RRGGBBAA or 'transparent'"
            )
        if avatar.transparent and (fmt, codec) != (VideoFormat.WEBM, VideoCodec.VP9):
            raise RequestValidationError(
                "avatarConfig.backgroundColor: transparency needs videoFormat webm with "
                "videoCodec vp9"
            )
        if avatar.background_color and avatar.background_image:
            raise RequestValidationError(
                "avatarConfig: set backgroundColor or backgroundImage, not both"
            )
        for name, deployment in (self.custom_voices or {}).items():
            if not name.strip():
                raise RequestValidationError("customVoices: a voice name is empty")
            check_resource_id(deployment, f"customVoices[{name!r}] deployment id")
        exclude: dict[str, Any] = dict.fromkeys(_READ_ONLY_JOB_FIELDS, True)
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=exclude)
        if self.properties is not None:
            body["properties"] = self.properties.model_dump(
                mode="json",
                by_alias=True,
                exclude_none=True,
                exclude=set(_READ_ONLY_PROPERTIES),
            )
        size = len(json.dumps(body).encode())
        if size > MAX_PAYLOAD_BYTES:
            raise RequestValidationError(
                f"request body is {size // 1024} KB, over the service's 500 KB limit: "
                "split the inputs into more jobs"
            )
        return body


class Operation(_Wire):
    """An operation, the target of ``Operation-Location``."""

    id: str
    status: Status


class Page(_Wire):
    """One page of a list: ``value`` plus ``nextLink`` (absent on the last page)."""

    value: list[dict[str, Any]]
    next_link: str | None = None


class SummaryResult(_Wire):
    """One entry of ``summary.json``'s ``results`` (note the PascalCase keys)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    texts: list[str] = Field(default_factory=list)
    status: str | None = None
    video_file_name: str | None = Field(default=None, alias="videoFileName")
    talking_avatar_character: str | None = Field(default=None, alias="TalkingAvatarCharacter")
    talking_avatar_style: str | None = Field(default=None, alias="TalkingAvatarStyle")


class SummaryFile(_Wire):
    """``summary.json`` next to a job's results."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    job_id: str | None = Field(default=None, alias="jobID")
    status: str | None = None
    results: list[SummaryResult] = Field(default_factory=list)


# ---------------------------------------------------------------- custom voice


class Project(_Wire):
    """A custom voice project."""

    id: str | None = None
    display_name: str | None = None
    description: str | None = None
    kind: ProjectKind
    locale: str | None = None
    created_date_time: datetime | None = None


class Recipe(_Wire):
    """A model's training recipe (only ``kind`` and ``version`` are writable)."""

    kind: str | None = None
    version: str | None = None
    description: str | None = None


class ModelProperties(_Wire):
    """A model's ``properties``."""

    preset_styles: list[str] | None = None
    style_training_set_ids: dict[str, str] | None = None
    voice_styles: list[str] | None = None
    failure_reason: str | None = None


class Model(_Wire):
    """A custom voice model; ``voice_name`` is the name used in SSML and ``customVoices``."""

    id: str | None = None
    voice_name: str | None = None
    description: str | None = None
    recipe: Recipe | None = None
    locale: str | None = None
    project_id: str | None = None
    consent_id: str | None = None
    training_set_id: str | None = None
    engine_version: str | None = None
    properties: ModelProperties | None = None
    status: CustomVoiceStatus | None = None
    created_date_time: datetime | None = None
    last_action_date_time: datetime | None = None


class EndpointProperties(_Wire):
    """An endpoint's ``properties``."""

    kind: EndpointKind | None = None


class Endpoint(_Wire):
    """A custom voice endpoint; its UUID ``id`` is the deployment id used in ``customVoices``."""

    id: str | None = None
    display_name: str | None = None
    description: str | None = None
    project_id: str
    model_id: str
    properties: EndpointProperties | None = None
    status: CustomVoiceStatus | None = None
    created_date_time: datetime | None = None
    last_action_date_time: datetime | None = None

    def to_request(self) -> dict[str, Any]:
        """Return the PUT body for creating this endpoint (read-only fields left out)."""
        return self.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            exclude={"id", "status", "created_date_time", "last_action_date_time"},
        )
