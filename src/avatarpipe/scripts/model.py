"""The validated shape of a script file.

A script names an avatar, a voice, video settings and a list of scenes; each scene becomes one
synthesis input (one SSML document) and one video clip. Every model forbids unknown keys.

Cross-field rules raise :func:`rule_error`, which records the sub-field at fault so the loader can
report ``avatar.style`` instead of just ``avatar``.

Validation context (``Script.model_validate(data, context={"base_dir": Path(...)})``):
``base_dir`` is the directory the script file is in. Asset paths (``post.intro`` ...) and the
``template`` are resolved against it; without it the current directory is used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from avatarpipe.scripts.templates import check_relative_path, find_template
from avatarpipe.scripts.text import (
    GESTURE_NAME_RE,
    MAX_PAUSE_MS,
    TextMarkerError,
    find_control_char,
    has_speakable,
    parse_segments,
)

__all__ = [
    "DEFAULT_BACKGROUND",
    "MAX_SCENES",
    "MAX_SCENE_CHARS",
    "MAX_SSML_BYTES",
    "AvatarSpec",
    "CropSpec",
    "Point",
    "PostSpec",
    "Scene",
    "Script",
    "VideoSpec",
    "VoiceSpec",
    "rule_error",
    "slugify",
]

MAX_SCENE_CHARS = 20_000
"""Most characters one scene's ``text`` or ``ssml`` may hold."""
MAX_SCENES = 1000
"""Most scenes in one script (Azure takes at most 1000 inputs per batch job)."""
MAX_SSML_BYTES = 500_000
"""Largest rendered SSML document per scene, in UTF-8 bytes (kept under Azure's 500 KB)."""
DEFAULT_BACKGROUND = "#FFFFFFFF"
"""Opaque white, Azure's default background."""

RULE_ERROR = "avatarpipe_rule"
RULE_FIELD = "avatarpipe_field"

_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_STYLE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_VOICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_:-]{0,127}$")
_LOCALE_RE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z]{2,4}){1,2}$")
_VOICE_LOCALE_RE = re.compile(r"^([a-z]{2,3}-[A-Z]{2})-")
_COLOR_RE = re.compile(r"^#[0-9A-Fa-f]{8}$")
_NUM = r"\d+(?:\.\d+)?"
_RATE_RE = re.compile(rf"^(?:x-slow|slow|medium|fast|x-fast|default|[+-]?{_NUM}%|{_NUM})$")
_PITCH_RE = re.compile(
    rf"^(?:x-low|low|medium|high|x-high|default|[+-]{_NUM}(?:Hz|st|%)|{_NUM}Hz)$"
)
_VOLUME_RE = re.compile(
    rf"^(?:silent|x-soft|soft|medium|loud|x-loud|default|[+-]?{_NUM}%?|[+-]{_NUM}dB)$"
)


def rule_error(field: str, message: str) -> PydanticCustomError:
    """Build a validation error that names the sub-field at fault.

    Args:
        field: The path below the model being validated, e.g. ``style`` or ``scenes[2].background``.
        message: The reason, one line.

    Returns:
        An error to ``raise`` inside a pydantic validator.
    """
    safe = message.replace("{", "(").replace("}", ")")
    return PydanticCustomError(RULE_ERROR, safe, {RULE_FIELD: field})


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("value_error", message.replace("{", "(").replace("}", ")"))


def slugify(text: str, *, max_len: int = 64) -> str:
    """Turn a title into a directory-safe slug: lowercase ``a-z0-9`` words joined by ``-``.

    Args:
        text: Any title.
        max_len: The longest slug to return.

    Returns:
        The slug; ``script`` when nothing usable is left.
    """
    words = re.findall(r"[a-z0-9]+", text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_len:
            break
        slug = candidate
    return slug or (words[0][:max_len] if words else "script")


def _number_to_str(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    return value


def _check_pattern(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.match(value):
        raise _fail(f"{value!r} is not a valid {what}")
    return value


def _check_color(value: str) -> str:
    if value.lower() == "transparent":
        return "transparent"
    if not _COLOR_RE.match(value):
        raise _fail(
            f"{value!r} is not a colour; use '#RRGGBBAA' (e.g. '#FFFFFFFF') or 'transparent'"
        )
    return value.upper()


def _check_https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise _fail(f"{value!r} is not an https URL (Azure fetches background images over https)")
    return value


def _is_transparent(color: str | None) -> bool:
    return color == "transparent" or (color is not None and color[-2:] != "FF")


Color = Annotated[str, BeforeValidator(lambda v: _check_color(v) if isinstance(v, str) else v)]
HttpsUrl = Annotated[
    str, BeforeValidator(lambda v: _check_https_url(v) if isinstance(v, str) else v)
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class AvatarSpec(_Model):
    """Which avatar appears.

    A standard avatar (``customized: false``) needs a ``style`` (``lisa`` + ``casual-sitting``);
    a custom avatar (``customized: true``) is named by its model name and has no style.
    """

    character: str = Field(description="standard avatar name or custom avatar model name")
    style: str | None = None
    customized: bool = False

    @field_validator("character")
    @classmethod
    def _character(cls, value: str) -> str:
        return _check_pattern(value, _NAME_RE, "avatar name (letters, digits, '-', '_'; max 64)")

    @field_validator("style")
    @classmethod
    def _style(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_pattern(value, _STYLE_RE, "avatar style (letters, digits, '-', '_')")

    @model_validator(mode="after")
    def _style_matches_kind(self) -> AvatarSpec:
        if self.customized and self.style is not None:
            raise rule_error(
                "style", "a custom avatar (customized: true) takes no style; remove it"
            )
        if not self.customized and self.style is None:
            raise rule_error(
                "style",
                f"standard avatar {self.character!r} needs a style (e.g. lisa: casual-sitting); "
                "for a custom avatar set customized: true",
            )
        return self


class VoiceSpec(_Model):
    """The voice that speaks.

    ``name`` is a platform voice (``en-US-AvaMultilingualNeural``) or a custom neural voice
    (``ContosoCeoNeural``). ``deployment_id`` is the CNV endpoint id: setting it means the job
    sends ``customVoices: {name: deployment_id}``. ``rate``, ``pitch`` and ``volume`` take SSML
    ``<prosody>`` values (``+10%``, ``slow``, ``-2st``, ``1.2``); ``style`` is an
    ``mstts:express-as`` style (``cheerful``).
    """

    name: str
    deployment_id: UUID | None = None
    locale: str | None = None
    style: str | None = None
    rate: Annotated[str | None, BeforeValidator(_number_to_str)] = None
    pitch: Annotated[str | None, BeforeValidator(_number_to_str)] = None
    volume: Annotated[str | None, BeforeValidator(_number_to_str)] = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_pattern(value, _VOICE_RE, "voice name (like en-US-AvaMultilingualNeural)")

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        return None if value is None else _check_pattern(value, _LOCALE_RE, "locale (like en-US)")

    @field_validator("style")
    @classmethod
    def _voice_style(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_pattern(value, _STYLE_RE, "speaking style (like cheerful)")

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_pattern(value, _RATE_RE, "rate (x-slow..x-fast, +10%, 1.2)")

    @field_validator("pitch")
    @classmethod
    def _pitch(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_pattern(value, _PITCH_RE, "pitch (x-low..x-high, +2st, -10%, +50Hz)")

    @field_validator("volume")
    @classmethod
    def _volume(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_pattern(value, _VOLUME_RE, "volume (silent..x-loud, 0-100, +10%, -6dB)")

    @property
    def effective_locale(self) -> str:
        """``locale``, else the prefix of a platform voice name, else ``en-US``."""
        if self.locale:
            return self.locale
        match = _VOICE_LOCALE_RE.match(self.name)
        return match.group(1) if match else "en-US"

    @property
    def is_custom(self) -> bool:
        """``True`` when the voice is a custom neural voice (it has a ``deployment_id``)."""
        return self.deployment_id is not None


class Point(_Model):
    """A pixel position in the avatar's full frame."""

    x: int = Field(ge=0, le=7680)
    y: int = Field(ge=0, le=4320)


class CropSpec(_Model):
    """A crop of the rendered frame (Azure ``videoCrop``)."""

    top_left: Point
    bottom_right: Point

    @model_validator(mode="after")
    def _ordered(self) -> CropSpec:
        if self.bottom_right.x <= self.top_left.x or self.bottom_right.y <= self.top_left.y:
            raise rule_error("bottom_right", "bottom_right must be right of and below top_left")
        return self


_FORMAT_CODECS: dict[str, tuple[str, ...]] = {
    "mp4": ("h264", "hevc", "av1"),
    "webm": ("vp9", "av1"),
}


class VideoSpec(_Model):
    """How the avatar video is rendered.

    The codec defaults to ``h264`` rather than Azure's ``hevc`` because h264 plays in every browser
    and player and post-processes fastest; hevc does not play in most desktop browsers. A
    transparent background (``transparent`` or an alpha below ``FF``) needs ``webm`` + ``vp9``,
    the only pair that carries alpha. ``background`` and ``background_image`` exclude each other;
    with neither, the background is opaque white.
    """

    format: Literal["mp4", "webm"] = "mp4"
    codec: Literal["h264", "hevc", "vp9", "av1"] = "h264"
    bitrate_kbps: int = Field(default=2000, ge=100, le=50_000)
    background: Color | None = None
    background_image: HttpsUrl | None = None
    subtitles: Literal["soft_embedded", "hard_embedded", "external_file", "none"] = "soft_embedded"
    crop: CropSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> VideoSpec:
        allowed = _FORMAT_CODECS[self.format]
        if self.codec not in allowed:
            raise rule_error(
                "codec",
                f"codec {self.codec!r} does not go in {self.format}; "
                f"use one of: {', '.join(allowed)}",
            )
        if self.background is not None and self.background_image is not None:
            raise rule_error(
                "background_image", "set either background or background_image, not both"
            )
        if self.background is None and self.background_image is None:
            object.__setattr__(self, "background", DEFAULT_BACKGROUND)
        if _is_transparent(self.background) and (self.format, self.codec) != ("webm", "vp9"):
            raise rule_error(
                "background",
                f"a transparent background needs format webm with codec vp9 "
                f"(got {self.format}/{self.codec})",
            )
        return self


class Scene(_Model):
    """One synthesis input: plain ``text`` (with optional markers) or an ``ssml`` fragment.

    ``text`` is XML-escaped into the template, so it can hold any characters; inline
    ``[gesture:NAME]`` and ``[pause:500ms]`` markers and blank-line paragraphs are described in
    :mod:`avatarpipe.scripts.text`. ``ssml`` is a fragment that goes inside ``<voice>`` as-is,
    after it is checked to be well-formed and to use only SSML elements allowed there.
    ``gestures`` are played at the very start of the scene. ``background`` /
    ``background_image`` override the script's video background for this scene.
    """

    text: str | None = Field(default=None, max_length=MAX_SCENE_CHARS)
    ssml: str | None = Field(default=None, max_length=MAX_SCENE_CHARS)
    title: str | None = Field(default=None, max_length=200)
    background: Color | None = None
    background_image: HttpsUrl | None = None
    gestures: list[str] = Field(default_factory=list, max_length=50)
    pause_after_ms: int | None = Field(default=None, ge=0, le=MAX_PAUSE_MS)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        bad = find_control_char(value)
        if bad is not None:
            raise _fail(f"text has control character U+{ord(value[bad]):04X} at position {bad}")
        try:
            segments = parse_segments(value)
        except TextMarkerError as exc:
            raise _fail(str(exc)) from None
        if not any(s.kind == "text" and has_speakable(s.text) for s in segments):
            raise _fail(
                "text is empty (or only invisible characters); a scene needs words to speak"
            )
        return value

    @field_validator("ssml")
    @classmethod
    def _ssml(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise _fail("ssml is empty")
        bad = find_control_char(value)
        if bad is not None:
            raise _fail(f"ssml has control character U+{ord(value[bad]):04X} at position {bad}")
        # Imported here: the fragment checker lives with the renderer.
        from avatarpipe.scripts.ssml import check_fragment

        reason = check_fragment(value)
        if reason:
            raise _fail(reason)
        return value

    @field_validator("gestures")
    @classmethod
    def _gestures(cls, value: list[str]) -> list[str]:
        for i, name in enumerate(value):
            if not GESTURE_NAME_RE.match(name):
                raise rule_error(
                    f"[{i}]",
                    f"{name!r} is not a gesture name (lowercase letters, digits, '-'; "
                    "like wave-left-1)",
                )
        return value

    @model_validator(mode="after")
    def _one_body(self) -> Scene:
        if self.text is None and self.ssml is None:
            raise rule_error("text", "a scene needs text (or ssml); neither is set")
        if self.text is not None and self.ssml is not None:
            raise rule_error("ssml", "a scene takes text or ssml, not both")
        if self.background is not None and self.background_image is not None:
            raise rule_error(
                "background_image", "set either background or background_image, not both"
            )
        return self


_ASSET_FIELDS = ("intro", "outro", "music", "logo")
Variant = Literal["16:9", "9:16", "1:1"]


def _default_variants() -> list[Variant]:
    return ["16:9"]


class PostSpec(_Model):
    """Post-processing: a preset plus optional intro, outro, music bed, logo and aspect variants.

    Asset paths are written relative to the script file, stay inside its directory, and must
    exist; after validation they are absolute paths.
    """

    preset: str = "web-1080p"
    intro: Path | None = None
    outro: Path | None = None
    music: Path | None = None
    logo: Path | None = None
    variants: list[Variant] = Field(default_factory=_default_variants, min_length=1, max_length=3)
    overrides: dict[str, Any] = Field(default_factory=dict)

    @field_validator("preset")
    @classmethod
    def _preset(cls, value: str) -> str:
        if not _SLUG_RE.match(value) or len(value) > 64:
            raise _fail(
                f"{value!r} is not a preset name (lowercase letters, digits and '-', "
                "like web-1080p)"
            )
        return value

    @field_validator(*_ASSET_FIELDS, mode="before")
    @classmethod
    def _asset(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise _fail(f"expected a file path, got {type(value).__name__}")
        reason = check_relative_path(value)
        if reason:
            raise _fail(reason)
        base = _base_dir(info)
        path = (base / value).resolve()
        if not path.is_file():
            raise _fail(f"file {value!r} does not exist (looked in {base})")
        return path

    @field_validator("overrides")
    @classmethod
    def _scalars(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if not isinstance(item, str | int | float | bool) or item is None:
                raise rule_error(
                    key, f"an override is a single value (text, number, true/false), got {item!r}"
                )
        return value

    @field_validator("variants")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise _fail(f"variants repeat an aspect ratio: {value}")
        return value

    @model_validator(mode="after")
    def _preset_exists(self) -> PostSpec:
        # Checked here, not first at post-processing time: an unknown preset or a bad override
        # must stop the run before any job is paid for.
        from avatarpipe.errors import PresetError
        from avatarpipe.media.presets import load_preset

        try:
            preset = load_preset(self.preset, dict(self.overrides))
        except PresetError as exc:
            raise rule_error("overrides" if self.overrides else "preset", exc.message) from None
        for i, variant in enumerate(self.variants):
            try:
                preset.for_aspect(variant)
            except PresetError as exc:
                raise rule_error(f"variants[{i}]", exc.message) from None
        return self


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base_dir")
    return Path(base) if base is not None else Path.cwd()


class Script(_Model):
    """A whole script: one avatar, one voice, video settings and 1-1000 scenes.

    ``slug`` names the output directory (``outputs/<slug>/``); when absent it is derived from the
    title. ``template`` names the SSML template (relative to ``templates/`` or the script's own
    directory; default ``ssml/presenter.xml.j2``).
    """

    title: str = Field(min_length=1, max_length=200)
    slug: str = Field(max_length=64)
    avatar: AvatarSpec
    voice: VoiceSpec
    video: VideoSpec = Field(default_factory=VideoSpec)
    template: str | None = None
    scenes: list[Scene] = Field(min_length=1, max_length=MAX_SCENES)
    post: PostSpec = Field(default_factory=PostSpec)

    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The script file this was loaded from (the template script, for a bulk row)."""
        return self._source

    def with_source(self, path: Path | None) -> Script:
        """Record the file this script came from and return ``self``.

        Args:
            path: The script file.

        Returns:
            This script.
        """
        self._source = path
        return self

    @model_validator(mode="before")
    @classmethod
    def _derive_slug(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("slug") is None:
            # An invalid or missing title is reported on its own, not again as a missing slug.
            title = data.get("title")
            data = {**data, "slug": slugify(title) if isinstance(title, str) else "script"}
        return data

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG_RE.match(value):
            raise _fail(
                f"{value!r} is not a slug: lowercase letters, digits and single '-' only "
                "(it names the output directory)"
            )
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        reason = check_relative_path(value)
        if reason:
            raise _fail(reason)
        if not value.endswith(".xml.j2"):
            raise _fail(f"template {value!r} must be an SSML template ending in .xml.j2")
        if find_template(value, _base_dir(info)) is None:
            raise _fail(f"template {value!r} not found in templates/ or next to the script")
        return value

    @model_validator(mode="after")
    def _scene_overrides(self) -> Script:
        for i in range(len(self.scenes)):
            video = self.scene_video(i)
            if _is_transparent(video.background) and (video.format, video.codec) != ("webm", "vp9"):
                raise rule_error(
                    f"scenes[{i}].background",
                    "a transparent background needs video format webm with codec vp9",
                )
        return self

    def scene_video(self, index: int) -> VideoSpec:
        """Return the video settings for one scene, with its background override applied.

        Args:
            index: The scene's position in ``scenes``.

        Returns:
            The script's ``video``, or a copy whose background is the scene's own.

        Raises:
            IndexError: There is no such scene.
        """
        scene = self.scenes[index]
        if scene.background is None and scene.background_image is None:
            return self.video
        return self.video.model_copy(
            update={"background": scene.background, "background_image": scene.background_image}
        )
