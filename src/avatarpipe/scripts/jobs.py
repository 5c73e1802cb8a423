"""From a validated script to what the batch avatar API needs: inputs and avatar settings."""

from __future__ import annotations

from dataclasses import dataclass

from avatarpipe.scripts.model import Script
from avatarpipe.scripts.ssml import render_script_ssml
from avatarpipe.speech.models import (
    AvatarCoordinate,
    BatchAvatarConfig,
    SubtitleType,
    VideoCodec,
    VideoCrop,
    VideoFormat,
)

__all__ = ["SceneInput", "avatar_config", "custom_voices", "scene_inputs"]


@dataclass(frozen=True)
class SceneInput:
    """One scene, ready to submit.

    Attributes:
        key: ``<slug>/scene-NNN``: unique across a bulk run, stable across reruns.
        index: The scene's position in the script.
        ssml: The scene's SSML document.
        avatar: The avatar settings (scene background overrides applied).
    """

    key: str
    index: int
    ssml: str
    avatar: BatchAvatarConfig


def avatar_config(script: Script, index: int) -> BatchAvatarConfig:
    """The ``avatarConfig`` for one scene of a script.

    Args:
        script: A validated script.
        index: The scene's position.

    Returns:
        The avatar settings, with the scene's background override applied.
    """
    video = script.scene_video(index)
    crop = None
    if video.crop is not None:
        crop = VideoCrop(
            top_left=AvatarCoordinate(x=video.crop.top_left.x, y=video.crop.top_left.y),
            bottom_right=AvatarCoordinate(x=video.crop.bottom_right.x, y=video.crop.bottom_right.y),
        )
    return BatchAvatarConfig(
        talking_avatar_character=script.avatar.character,
        talking_avatar_style=script.avatar.style,
        customized=script.avatar.customized,
        video_format=VideoFormat(video.format),
        video_codec=VideoCodec(video.codec),
        subtitle_type=SubtitleType(video.subtitles),
        background_color=str(video.background) if video.background_image is None else None,
        background_image=str(video.background_image) if video.background_image else None,
        video_crop=crop,
        bitrate_kbps=video.bitrate_kbps,
    )


def custom_voices(script: Script) -> dict[str, str]:
    """``customVoices`` for the script's voice: ``{voice name: deployment id}`` or empty."""
    if script.voice.deployment_id is None:
        return {}
    return {script.voice.name: str(script.voice.deployment_id)}


def scene_inputs(script: Script) -> list[SceneInput]:
    """Render every scene of a script to SSML with its avatar settings.

    Args:
        script: A validated script.

    Returns:
        One input per scene, in order.

    Raises:
        ScriptError: A scene's SSML does not render or is not well-formed.
    """
    documents = render_script_ssml(script)
    return [
        SceneInput(
            key=f"{script.slug}/scene-{i + 1:03d}",
            index=i,
            ssml=ssml,
            avatar=avatar_config(script, i),
        )
        for i, ssml in enumerate(documents)
    ]
