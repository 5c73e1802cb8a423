"""The outputs a script asks for: one post-processing job per variant (aspect ratio).

A script names a preset and its variants in ``post``; each variant is the preset reframed for
that aspect ratio and is written as ``<slug><suffix><ext>`` into the run folder (``16:9`` has
no suffix, ``9:16`` is ``-9x16``). The jobs of one script read the same parts, so
:func:`~avatarpipe.media.postprocess.process_outputs` makes them all in one ffmpeg pass (one
decode for every variant). An intro or outro conformed to the scenes' stream parameters is kept
in ``<output root>/.cache/conformed`` for later runs. Without post-processing the scenes are
only joined into ``<slug>.mp4``.
"""

from __future__ import annotations

from pathlib import Path

from avatarpipe.media.postprocess import PostJob
from avatarpipe.media.presets import Preset, load_preset
from avatarpipe.media.tracks import scene_cues
from avatarpipe.publish.folder import RunDirectory
from avatarpipe.scripts.model import Script

__all__ = ["joined_path", "output_jobs", "preset_for", "variant_suffix"]

DEFAULT_VARIANT = "16:9"
CONFORM_CACHE = Path(".cache") / "conformed"


def variant_suffix(variant: str) -> str:
    """The file-name suffix of a variant: ``""`` for ``16:9``, ``-9x16`` for ``9:16``."""
    return "" if variant == DEFAULT_VARIANT else "-" + variant.replace(":", "x")


def preset_for(script: Script, variant: str) -> Preset:
    """The script's preset (with its overrides) reframed for one variant.

    Raises:
        PresetError: The preset, an override or the variant is invalid.
    """
    return load_preset(script.post.preset, dict(script.post.overrides)).for_aspect(variant)  # type: ignore[arg-type]


def output_jobs(script: Script, scenes: list[Path], run_dir: RunDirectory) -> list[PostJob]:
    """One post-processing job per variant of the script, writing into its run folder.

    The jobs share their parts, so they are made in one pass (see the module docstring).

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
            )
        )
    return jobs


def joined_path(script: Script, run_dir: RunDirectory) -> Path:
    """Where the joined scenes go when the script is not post-processed."""
    return run_dir.path(f"{script.slug}.mp4")
