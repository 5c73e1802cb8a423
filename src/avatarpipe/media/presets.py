"""Post-processing presets: data files in ``templates/presets/*.yaml``, validated like scripts.

A preset says what one finished output looks like (size, fit, codecs, loudness, subtitles,
thumbnail...). A script names a preset and may override fields::

    preset = load_preset("web-1080p", {"loudness": {"target_lufs": -14}})
    preset = load_preset("web-1080p", {"loudness.target_lufs": -14})   # dotted keys work too
    vertical = preset.for_aspect("9:16")                                # 1080x1920 variant
"""

from __future__ import annotations

import copy
import difflib
import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from avatarpipe.errors import PresetError

__all__ = [
    "Aspect",
    "LogoSpec",
    "LoudnessSpec",
    "MusicSpec",
    "Preset",
    "SubtitleStyle",
    "list_presets",
    "load_preset",
    "parse_color",
    "presets_dir",
]

Aspect = Literal["16:9", "9:16", "1:1"]
_ASPECTS: dict[str, Fraction] = {
    "16:9": Fraction(16, 9),
    "9:16": Fraction(9, 16),
    "1:1": Fraction(1),
}

# Colour names ffmpeg understands that people actually write; anything else must be hex.
_NAMED_COLORS = {
    "black": "000000",
    "white": "FFFFFF",
    "gray": "808080",
    "grey": "808080",
    "red": "FF0000",
    "green": "008000",
    "blue": "0000FF",
    "yellow": "FFFF00",
    "navy": "000080",
    "darkgray": "A9A9A9",
    "lightgray": "D3D3D3",
}
_HEX_RE = re.compile(r"^(?:#|0x)?(?P<hex>[0-9A-Fa-f]{6}(?:[0-9A-Fa-f]{2})?)$")


def parse_color(value: str) -> str:
    """Normalise a colour to ``#RRGGBB`` or ``#RRGGBBAA`` (upper case).

    Args:
        value: ``#RRGGBB``, ``#RRGGBBAA``, ``0xRRGGBB`` or a common name (``black``, ``white``...).

    Returns:
        The colour as ``#RRGGBB[AA]``.

    Raises:
        ValueError: The value is not a colour (pydantic turns this into a field error).
    """
    text = value.strip()
    named = _NAMED_COLORS.get(text.lower())
    if named:
        return f"#{named}"
    m = _HEX_RE.match(text)
    if not m:
        raise ValueError(
            f"{value!r} is not a colour (use #RRGGBB, #RRGGBBAA or a name like 'black')"
        )
    return f"#{m['hex'].upper()}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoudnessSpec(_Strict):
    """Two-pass EBU R128 loudness normalisation (ffmpeg ``loudnorm``, linear mode).

    Attributes:
        enabled: Normalise at all.
        target_lufs: Integrated loudness target (-16 for web/podcast, -14 social, -23 EBU).
        true_peak_dbtp: Maximum true peak.
        lra: Loudness range target.
    """

    enabled: bool = True
    target_lufs: float = Field(-16.0, ge=-70.0, le=-5.0)
    true_peak_dbtp: float = Field(-1.5, ge=-9.0, le=0.0)
    lra: float = Field(11.0, ge=1.0, le=50.0)


class MusicSpec(_Strict):
    """Background music: looped under the whole output and ducked under speech (sidechain).

    Attributes:
        gain_db: Music level before ducking, relative to its file.
        duck: Compress the music when speech is present.
        threshold: Speech level (linear, 0..1) above which ducking starts.
        ratio: Compression ratio applied to the music while speech plays.
        attack_ms: How fast the music dips.
        release_ms: How fast it comes back.
        fade_out_s: Fade the music out over the last seconds.
    """

    gain_db: float = Field(-14.0, ge=-60.0, le=12.0)
    duck: bool = True
    threshold: float = Field(0.03, gt=0.0, le=1.0)
    ratio: float = Field(8.0, ge=1.0, le=20.0)
    attack_ms: float = Field(20.0, ge=0.01, le=2000.0)
    release_ms: float = Field(400.0, ge=0.01, le=9000.0)
    fade_out_s: float = Field(1.0, ge=0.0, le=30.0)


class LogoSpec(_Strict):
    """Where and how large the logo/watermark sits.

    Attributes:
        position: Corner (or centre) of the frame.
        width_pct: Logo width as a percentage of the output width.
        margin_pct: Distance from the edges as a percentage of the output height.
        opacity: 1.0 opaque, 0.3 for a faint watermark.
    """

    position: Literal["top-left", "top-right", "bottom-left", "bottom-right", "center"] = (
        "top-right"
    )
    width_pct: float = Field(12.0, gt=0.0, le=100.0)
    margin_pct: float = Field(3.0, ge=0.0, le=40.0)
    opacity: float = Field(1.0, gt=0.0, le=1.0)


class SubtitleStyle(_Strict):
    """How burned-in subtitles look (sizes relative to the output height, so variants match).

    Attributes:
        font: Font family (resolved by fontconfig; DejaVu Sans is a safe default on Linux).
        size_pct: Font size as a percentage of the output height.
        color: Text colour.
        outline_color: Outline colour.
        outline_px: Outline width at 1080 px of height (scaled with the output).
        bold: Bold text.
        margin_pct: Bottom margin as a percentage of the output height.
        max_chars: Maximum characters per line when cues are built from word boundaries.
        max_lines: Maximum lines per cue.
    """

    font: str = "DejaVu Sans"
    size_pct: float = Field(4.5, gt=0.5, le=20.0)
    color: str = "#FFFFFF"
    outline_color: str = "#000000"
    outline_px: float = Field(3.0, ge=0.0, le=20.0)
    bold: bool = False
    margin_pct: float = Field(6.0, ge=0.0, le=45.0)
    max_chars: int = Field(42, ge=10, le=120)
    max_lines: int = Field(2, ge=1, le=4)

    @field_validator("color", "outline_color")
    @classmethod
    def _color(cls, value: str) -> str:
        return parse_color(value)


class Preset(_Strict):
    """What one finished output looks like.

    Attributes:
        name: The preset's name (its file stem).
        description: One line for humans.
        width: Output width in pixels (even).
        height: Output height in pixels (even).
        aspect: ``16:9``, ``9:16`` or ``1:1``; must match ``width``/``height``.
        fit: ``pad`` (letterbox with ``pad_color``) or ``crop`` (fill, centre crop).
        pad_color: Colour of the padding bars.
        fps: Output frame rate; every part is conformed to it.
        container: ``mp4``, ``mov``, ``mkv`` or ``webm``.
        video_codec: ``h264``, ``hevc`` or ``vp9``.
        video_bitrate_kbps: Target video bitrate (VBV-capped); exclusive with ``crf``.
        crf: Constant quality; used when ``video_bitrate_kbps`` is not set.
        speed: Encoder speed/quality trade-off (x264/x265 ``-preset`` names).
        video_copy: ``auto``: when the delivered picture already is what the preset makes
            (codec, size, frame rate, pixel format, bitrate under the VBV cap) and nothing is
            drawn on it, copy the video stream and process only the audio; ``never``: always
            re-encode (e.g. to force the preset's bitrate).
        audio_codec: ``aac`` or ``opus``.
        audio_bitrate_kbps: Audio bitrate.
        sample_rate: Audio sample rate.
        loudness: Loudness normalisation settings.
        music: Background-music mixing settings (used when a job has music).
        logo: Logo placement (used when a job has a logo).
        subtitles: ``burn`` (styled, in the picture), ``soft`` (a subtitle track) or ``none``.
        subtitle_style: Look of burned subtitles and line-breaking of generated cues.
        faststart: Move the MP4 index to the front (progressive web playback).
        thumbnail: Write a poster PNG beside the output.
        thumbnail_at_s: Poster time; default 10 % into the output.
        contact_sheet: Write a contact-sheet PNG beside the output.
        contact_sheet_cols: Contact sheet columns.
        contact_sheet_rows: Contact sheet rows.
    """

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = ""
    width: int = Field(ge=16, le=7680)
    height: int = Field(ge=16, le=7680)
    aspect: Aspect
    fit: Literal["pad", "crop"] = "pad"
    pad_color: str = "#000000"
    fps: float = Field(25.0, gt=0.0, le=120.0)
    container: Literal["mp4", "mov", "mkv", "webm"] = "mp4"
    video_codec: Literal["h264", "hevc", "vp9"] = "h264"
    video_bitrate_kbps: int | None = Field(None, ge=50, le=200_000)
    crf: int | None = Field(None, ge=0, le=63)
    speed: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"
    ] = "medium"
    video_copy: Literal["auto", "never"] = "auto"
    audio_codec: Literal["aac", "opus"] = "aac"
    audio_bitrate_kbps: int = Field(128, ge=16, le=512)
    sample_rate: Literal[44100, 48000] = 48000
    loudness: LoudnessSpec = LoudnessSpec()
    music: MusicSpec = MusicSpec()
    logo: LogoSpec = LogoSpec()
    subtitles: Literal["burn", "soft", "none"] = "soft"
    subtitle_style: SubtitleStyle = SubtitleStyle()
    faststart: bool = True
    thumbnail: bool = True
    thumbnail_at_s: float | None = Field(None, ge=0.0)
    contact_sheet: bool = False
    contact_sheet_cols: int = Field(4, ge=1, le=12)
    contact_sheet_rows: int = Field(3, ge=1, le=12)

    @field_validator("pad_color")
    @classmethod
    def _pad_color(cls, value: str) -> str:
        return parse_color(value)

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"{value} must be even (4:2:0 video needs even sizes)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Preset:
        ratio = Fraction(self.width, self.height)
        want = _ASPECTS[self.aspect]
        if abs(float(ratio) - float(want)) > 0.02 * float(want):
            raise ValueError(
                f"aspect {self.aspect} does not match {self.width}x{self.height}; "
                "set width/height to match (or use Preset.for_aspect)"
            )
        if self.video_bitrate_kbps is not None and self.crf is not None:
            raise ValueError("set either video_bitrate_kbps or crf, not both")
        if self.container == "webm" and (self.video_codec != "vp9" or self.audio_codec != "opus"):
            raise ValueError("container webm needs video_codec vp9 and audio_codec opus")
        if self.container in ("mp4", "mov") and self.video_codec == "vp9":
            raise ValueError(
                f"container {self.container} with vp9 is not supported; use webm or mkv"
            )
        return self

    @property
    def suffix(self) -> str:
        """The file suffix for this preset's container (``.mp4``...)."""
        return f".{self.container}"

    def for_aspect(self, aspect: Aspect) -> Preset:
        """Return this preset for another aspect, keeping the short side.

        A 1920x1080 preset becomes 1080x1920 for ``9:16`` and 1080x1080 for ``1:1``.

        Args:
            aspect: The variant's aspect.

        Returns:
            A new preset named ``<name>-<w>x<h>``.

        Raises:
            PresetError: ``aspect`` is not one of ``16:9``, ``9:16``, ``1:1``.
        """
        if aspect not in _ASPECTS:
            raise PresetError(f"unknown aspect {aspect!r} (use one of {', '.join(_ASPECTS)})")
        if aspect == self.aspect:
            return self
        short = min(self.width, self.height)
        ratio = _ASPECTS[aspect]
        if ratio >= 1:
            w, h = _even(short * ratio), short
        else:
            w, h = short, _even(short / ratio)
        return self.model_copy(
            update={"aspect": aspect, "width": w, "height": h, "name": f"{self.name}-{w}x{h}"}
        )


def _even(value: Fraction | int) -> int:
    return int(round(float(value) / 2.0)) * 2


def presets_dir() -> Path:
    """Find ``templates/presets`` by walking up from this module, then ``avatarpipe/_templates``.

    Returns:
        The presets directory.

    Raises:
        PresetError: No presets directory exists.
    """
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "templates" / "presets"
        if candidate.is_dir():
            return candidate
    fallback = here.parent.parent / "_templates" / "presets"
    if fallback.is_dir():
        return fallback
    raise PresetError("no templates/presets directory found next to the avatarpipe package")


def list_presets() -> list[str]:
    """Return the names of the shipped presets, sorted.

    Returns:
        Preset names (file stems of ``templates/presets/*.yaml``).

    Raises:
        PresetError: No presets directory exists.
    """
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if "." in key:
            _set_dotted(out, key, copy.deepcopy(value))
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _first_error(exc: ValidationError, source: str, overrides: dict[str, Any]) -> PresetError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(preset)"
    top = str(err["loc"][0]) if err["loc"] else ""
    origin = "override" if top in overrides or loc in overrides else "field"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    return PresetError(f"{source}: {origin} {loc}: {msg}")


def load_preset(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> Preset:
    """Load and validate a preset, applying overrides.

    Args:
        name_or_path: A shipped preset's name (``web-1080p``) or a path to a ``.yaml`` file.
        overrides: Fields to change, nested (``{"loudness": {"target_lufs": -14}}``) or dotted
            (``{"loudness.target_lufs": -14}``).

    Returns:
        The validated preset.

    Raises:
        PresetError: Unknown name (with a did-you-mean), unreadable file, or an invalid field or
            override (the message names the file and the field).
    """
    overrides = dict(overrides or {})
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text or isinstance(name_or_path, Path):
        path = Path(name_or_path)
        if not path.is_file():
            raise PresetError(f"preset file {path} does not exist")
    else:
        names = list_presets()
        if text not in names:
            close = difflib.get_close_matches(text, names, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise PresetError(f"unknown preset {text!r} ({hint}known: {', '.join(names)})")
        path = presets_dir() / f"{text}.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PresetError(f"{path}: cannot read preset: {exc}") from exc
    if not isinstance(raw, dict):
        raise PresetError(f"{path}: a preset must be a mapping of fields")
    raw.setdefault("name", path.stem)
    if raw["name"] != path.stem:
        raise PresetError(f"{path}: field name: {raw['name']!r} must match the file name")
    try:
        base = Preset.model_validate(raw)
    except ValidationError as exc:
        raise _first_error(exc, str(path), {}) from exc
    if not overrides:
        return base
    merged = _merge(base.model_dump(), overrides)
    try:
        return Preset.model_validate(merged)
    except ValidationError as exc:
        raise _first_error(exc, f"preset {base.name}", overrides) from exc
