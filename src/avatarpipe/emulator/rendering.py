"""The seam between the emulator service and whatever draws the videos.

The service (``emulator/app.py``) turns one accepted job input into a :class:`RenderSpec` and asks a
:class:`Renderer` for the files. The real renderer lives in ``emulator/render/``; tests may pass
any object with the same ``render`` method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

__all__ = ["RenderSpec", "RenderedInput", "Renderer"]

InputKindName = Literal["PlainText", "SSML"]
VideoFormatName = Literal["mp4", "webm"]
VideoCodecName = Literal["h264", "hevc", "vp9", "av1"]
SubtitleTypeName = Literal["soft_embedded", "hard_embedded", "external_file", "none"]


@dataclass(frozen=True)
class RenderSpec:
    """Everything needed to render one input of a batch job.

    Attributes:
        content: The input: plain text, or a whole ``<speak>`` SSML document.
        input_kind: ``PlainText`` or ``SSML``.
        voice: ``synthesisConfig.voice`` (PlainText), e.g. ``en-US-AvaMultilingualNeural``.
        rate: ``synthesisConfig.rate`` (PlainText prosody), when given.
        pitch: ``synthesisConfig.pitch``, when given.
        volume: ``synthesisConfig.volume``, when given.
        character: ``avatarConfig.talkingAvatarCharacter``.
        style: ``avatarConfig.talkingAvatarStyle``.
        customized: Whether the character is a custom avatar.
        photo: Whether this is a photo avatar (``photoAvatarBaseModel`` set): 512x512.
        video_format: Lower-case container name.
        video_codec: Lower-case codec name.
        bitrate_kbps: Target video bitrate.
        subtitle_type: How subtitles are delivered.
        background_color: ``#RRGGBBAA`` (``transparent`` is passed as ``#00000000``).
        background_image: A local copy of ``avatarConfig.backgroundImage``, when set.
        video_crop: ``(left, top, right, bottom)`` in pixels of the full frame, when set.
        word_boundary: Write ``NNNN.word.json`` (word boundaries) beside the video.
        sentence_boundary: Write ``NNNN.sentence.json`` (sentence boundaries) beside the video.
    """

    content: str
    input_kind: InputKindName = "PlainText"
    voice: str | None = None
    rate: str | None = None
    pitch: str | None = None
    volume: str | None = None
    character: str = "lisa"
    style: str | None = None
    customized: bool = False
    photo: bool = False
    video_format: VideoFormatName = "mp4"
    video_codec: VideoCodecName = "hevc"
    bitrate_kbps: int = 2000
    subtitle_type: SubtitleTypeName = "soft_embedded"
    background_color: str = "#FFFFFFFF"
    background_image: Path | None = None
    video_crop: tuple[int, int, int, int] | None = None
    word_boundary: bool = False
    sentence_boundary: bool = False


@dataclass
class RenderedInput:
    """The files made for one input.

    Attributes:
        video: The video file (``NNNN.mp4`` / ``NNNN.webm``).
        duration_ms: Its duration in milliseconds.
        size_bytes: Its size in bytes.
        characters: Billable characters (the spoken text's length).
        extra_files: Subtitle and boundary files written beside the video.
    """

    video: Path
    duration_ms: int
    size_bytes: int
    characters: int
    extra_files: list[Path] = field(default_factory=list)


class Renderer(Protocol):
    """Anything that can render one input into ``out_dir`` under the file stem ``stem``."""

    def render(self, spec: RenderSpec, out_dir: Path, stem: str) -> RenderedInput:
        """Render ``spec`` to ``out_dir/<stem>.<ext>`` (plus extra files).

        Raises:
            MediaError: Rendering failed.
            RequestValidationError: The spec asks for something impossible.
        """
        ...
