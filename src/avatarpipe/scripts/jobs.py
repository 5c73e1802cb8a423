"""From a validated script to what the batch avatar API needs: inputs and avatar settings."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avatarpipe.batch.plan import VideoInput
from avatarpipe.batch.run import SynthesisRequest
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

__all__ = [
    "RenderedScene",
    "avatar_config",
    "custom_avatar_scripts",
    "custom_voices",
    "run_label",
    "scene_inputs",
    "synthesis_requests",
]


@dataclass(frozen=True)
class RenderedScene:
    """One scene of a script, ready to submit: the video to make and the avatar that makes it.

    Attributes:
        index: The scene's position in the script.
        video: The video: key ``<slug>/scene-NNN`` (unique across a bulk run, stable across
            reruns) and the scene's SSML document.
        avatar: The avatar settings (scene background overrides applied).
    """

    index: int
    video: VideoInput
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


def custom_avatar_scripts(scripts: Sequence[Script]) -> list[Script]:
    """The first script of each custom avatar the scripts use, by avatar name.

    Each custom avatar is checked once, with that script's voice for an Azure probe.
    """
    first: dict[str, Script] = {}
    for script in scripts:
        if script.avatar.customized:
            first.setdefault(script.avatar.character, script)
    return [first[name] for name in sorted(first)]


def custom_voices(script: Script) -> dict[str, str]:
    """``customVoices`` for the script's voice: ``{voice name: deployment id}`` or empty."""
    if script.voice.deployment_id is None:
        return {}
    return {script.voice.name: str(script.voice.deployment_id)}


def run_label(scripts: Sequence[Script]) -> str:
    """The readable label of a run over ``scripts`` (part of its job ids and run names).

    Args:
        scripts: The run's scripts (one, or the rows of a bulk CSV).

    Returns:
        The slug of a single script, else the first slug plus ``-bulk``.
    """
    return scripts[0].slug if len(scripts) == 1 else f"{scripts[0].slug}-bulk"


def scene_inputs(script: Script) -> list[RenderedScene]:
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
        RenderedScene(
            index=i,
            video=VideoInput(key=f"{script.slug}/scene-{i + 1:03d}", content=ssml),
            avatar=avatar_config(script, i),
        )
        for i, ssml in enumerate(documents)
    ]


def synthesis_requests(
    scripts: Sequence[Script], scenes: Mapping[str, Sequence[RenderedScene]], **options: Any
) -> list[SynthesisRequest]:
    """One synthesis request per avatar setting and custom voice set, over all the scripts.

    Scenes that share their avatar settings and custom voices share a request (and so its
    polling and packed jobs), whichever script they come from; scene order is kept.

    Args:
        scripts: Validated scripts.
        scenes: Each script's rendered scenes, by slug (see :func:`scene_inputs`).
        **options: The requests' other fields (``label``, ``pack``, ``cache_dir``...).

    Returns:
        The requests, in the order their first scene appears.
    """
    groups: dict[str, list[tuple[Script, RenderedScene]]] = {}
    for script in scripts:
        for scene in scenes[script.slug]:
            group = json.dumps([scene.avatar.wire(), custom_voices(script)], sort_keys=True)
            groups.setdefault(group, []).append((script, scene))
    return [
        SynthesisRequest(
            inputs=[scene.video for _, scene in members],
            avatar=members[0][1].avatar,
            custom_voices=custom_voices(members[0][0]),
            **options,
        )
        for members in groups.values()
    ]
