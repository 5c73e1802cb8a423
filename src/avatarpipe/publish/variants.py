"""The outputs a script asks for: one post-processing job per variant (aspect ratio).

A script names a preset and its variants in ``post``; each variant is the preset reframed for
that aspect ratio and is written as ``<slug><suffix><ext>`` into the run folder (``16:9`` has
no suffix, ``9:16`` is ``-9x16``). The jobs of one script read the same parts, so
:func:`~avatarpipe.media.postprocess.process_outputs` makes them all in one ffmpeg pass (one
decode for every variant). An intro or outro conformed to the scenes' stream parameters is kept
in ``<output root>/.cache/conformed`` for later runs. Without post-processing the scenes are
only joined into ``<slug>.<format>`` (the service's container: a webm stays a webm).

What the script's ``video:`` asks for carries through to the output when the preset allows it:
a ``codec`` the preset's container takes and a ``bitrate_kbps`` (for a preset that encodes to
a bitrate) replace the preset's own, unless ``post.overrides`` sets them. When the preset cannot
honour them, one warning line says so (and the manifest repeats it). Each variant's room around
the presenter is filled with the script's background, and the service's caption files
(``subtitles: external_file``) are recorded with the output.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from avatarpipe.media.postprocess import PostJob
from avatarpipe.media.presets import Preset, load_preset
from avatarpipe.media.tracks import scene_cues
from avatarpipe.publish.folder import RunDirectory
from avatarpipe.scripts.model import Script

__all__ = ["joined_path", "output_jobs", "preset_for", "script_settings", "variant_suffix"]

log = logging.getLogger(__name__)

DEFAULT_VARIANT = "16:9"
CONFORM_CACHE = Path(".cache") / "conformed"
_CONTAINER_CODECS = {
    "mp4": ("h264", "hevc"),
    "mov": ("h264", "hevc", "prores"),
    "mkv": ("h264", "hevc", "vp9"),
    "webm": ("vp9",),
}


def variant_suffix(variant: str) -> str:
    """The file-name suffix of a variant: ``""`` for ``16:9``, ``-9x16`` for ``9:16``."""
    return "" if variant == DEFAULT_VARIANT else "-" + variant.replace(":", "x")


def script_settings(script: Script, base: Preset) -> tuple[dict[str, Any], list[str]]:
    """The preset overrides the script's ``video:`` asks for, and why some cannot be kept.

    Only what the script sets explicitly counts (its defaults do not), and ``post.overrides``
    wins over ``video:``.

    Args:
        script: A validated script.
        base: The script's preset with its ``post.overrides`` applied.

    Returns:
        The overrides to apply, and one warning line per setting the preset cannot honour.
    """
    asked = script.video.model_fields_set
    own = set(script.post.overrides)
    updates: dict[str, Any] = {}
    warnings: list[str] = []
    codec = script.video.codec
    if "codec" in asked and codec != base.video_codec and "video_codec" not in own:
        if codec in _CONTAINER_CODECS[base.container] and base.video_codec != "prores":
            updates["video_codec"] = codec
        else:
            warnings.append(
                f"{script.slug}: preset {base.name} delivers {base.video_codec} in "
                f"{base.container}; the script's video.codec {codec} is re-encoded to "
                f"{base.video_codec} (pick a preset with {codec}, or set post.overrides)"
            )
    rate = script.video.bitrate_kbps
    if "bitrate_kbps" in asked and "video_bitrate_kbps" not in own and "crf" not in own:
        if base.video_bitrate_kbps is not None:
            updates["video_bitrate_kbps"] = rate
        else:
            how = f"constant quality {base.crf}"
            if base.video_codec == "prores":
                how = "ProRes quality"
            warnings.append(
                f"{script.slug}: preset {base.name} encodes at {how}; the script's "
                f"video.bitrate_kbps {rate} is not used"
            )
    return updates, warnings


def preset_for(script: Script, variant: str) -> Preset:
    """The script's preset (with its overrides and ``video:`` settings) for one variant.

    Raises:
        PresetError: The preset, an override or the variant is invalid.
    """
    overrides = dict(script.post.overrides)
    base = load_preset(script.post.preset, overrides)
    updates, _ = script_settings(script, base)
    preset = load_preset(script.post.preset, {**overrides, **updates}) if updates else base
    return preset.for_aspect(variant)  # type: ignore[arg-type]


def _caption_files(scenes: list[Path]) -> list[Path]:
    found = (p.with_suffix(suffix) for p in scenes for suffix in (".vtt", ".srt"))
    return [p for p in found if p.is_file()]


def output_jobs(script: Script, scenes: list[Path], run_dir: RunDirectory) -> list[PostJob]:
    """One post-processing job per variant of the script, writing into its run folder.

    The jobs share their parts, so they are made in one pass (see the module docstring). A
    ``video:`` setting the preset cannot honour is logged once (a warning) and recorded.

    Args:
        script: A validated script.
        scenes: The script's scene videos, in order.
        run_dir: The script's staged run folder.

    Returns:
        The jobs, in the order of ``script.post.variants``.

    Raises:
        PresetError: The preset, an override or the variant is invalid.
        MediaError: A scene's cues cannot be read.
        StorageError: An output name would leave the run folder.
    """
    cues = [scene_cues(p) for p in scenes]
    cache_dir = run_dir.final.parents[1] / CONFORM_CACHE
    _, warnings = script_settings(
        script, load_preset(script.post.preset, dict(script.post.overrides))
    )
    for line in warnings:
        log.warning("%s", line)
    background = script.video.background
    if background == "transparent":
        background = "#00000000"
    jobs = []
    for variant in script.post.variants:
        preset = preset_for(script, variant)
        jobs.append(
            PostJob(
                scenes=scenes,
                preset=preset,
                out_path=run_dir.path(f"{script.slug}{variant_suffix(variant)}{preset.suffix}"),
                intro=script.post.intro,
                outro=script.post.outro,
                music=script.post.music,
                logo=script.post.logo,
                scene_cues=cues,
                cache_dir=cache_dir,
                background=background,
                caption_files=_caption_files(scenes),
                warnings=warnings,
            )
        )
    return jobs


def joined_path(script: Script, run_dir: RunDirectory) -> Path:
    """Where the joined scenes go when the script is not post-processed.

    The scenes are joined by stream copy, so the file keeps the service's container
    (``<slug>.webm`` for ``video: {format: webm}``).
    """
    return run_dir.path(f"{script.slug}.{script.video.format}")
