"""The inputs of an output: every part probed and checked before any ffmpeg pass runs.

A part is the intro, a scene or the outro. Each is probed once (probes are shared by all outputs
of a pass), checked for the streams its role needs, and given a duration aligned to whole frames
of the output's rate. When ffmpeg later reports damaged input, :func:`check_damage` names the
part that is damaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avatarpipe.errors import MediaError
from avatarpipe.media.ffmpeg import MediaInfo, probe, run_ffmpeg
from avatarpipe.media.job import PostJob

__all__ = ["DAMAGE_MARKERS", "Part", "Probes", "check_damage", "collect_parts", "damaged"]

DAMAGE_MARKERS = (
    "partial file",
    "Invalid data found",
    "moov atom not found",
    "error reading header",
)


@dataclass(frozen=True)
class Part:
    """One probed input part.

    Attributes:
        role: ``intro``, ``scene 1``... or ``outro``.
        path: The file.
        info: Its probe.
        duration_s: Its duration rounded to whole frames of the output rate.
    """

    role: str
    path: Path
    info: MediaInfo
    duration_s: float


class Probes:
    """Probes of the files of one pass, each file probed once."""

    def __init__(self) -> None:
        self._seen: dict[Path, MediaInfo] = {}

    def get(self, role: str, path: Path) -> MediaInfo:
        """Probe ``path`` (once) for the part called ``role``.

        Raises:
            MediaError: The file is missing or unreadable; the message names role and file.
        """
        if path in self._seen:
            return self._seen[path]
        if not path.is_file():
            raise MediaError(f"{role} {path}: no such file")
        try:
            info = probe(path)
        except MediaError as exc:
            raise MediaError(
                f"{role} {path}: {exc.message.split(': ', 1)[-1]}",
                returncode=exc.returncode,
                stderr_tail=exc.stderr_tail,
            ) from exc
        self._seen[path] = info
        return info


def _part(probes: Probes, role: str, path: Path, fps: float) -> Part:
    info = probes.get(role, path)
    if info.video is None:
        kind = "audio-only file" if info.audio else "no streams"
        raise MediaError(f"{role} {path}: has no video stream ({kind}); a video is needed")
    if info.duration_s <= 0:
        raise MediaError(f"{role} {path}: has no duration (empty or truncated)")
    frames = max(1, round(info.duration_s * fps))
    return Part(role, path, info, frames / fps)


def collect_parts(job: PostJob, probes: Probes | None = None) -> list[Part]:
    """Probe and check every input of ``job``; return its parts in playing order.

    Args:
        job: The output to make.
        probes: Probes shared with the other outputs of the same pass.

    Returns:
        Intro (if any), scenes, outro (if any).

    Raises:
        MediaError: No scenes, a missing/unreadable/wrong-kind input (the message names its
            role and file), or cue lists that do not match the scenes.
    """
    probes = probes or Probes()
    if not job.scenes:
        raise MediaError(f"{job.out_path.name}: no scenes to process")
    fps = job.preset.fps
    parts: list[Part] = []
    if job.intro is not None:
        parts.append(_part(probes, "intro", Path(job.intro), fps))
    for i, scene in enumerate(job.scenes, 1):
        part = _part(probes, f"scene {i}", Path(scene), fps)
        if part.info.audio is None:
            raise MediaError(f"scene {i} {scene}: has no audio stream (speech expected)")
        parts.append(part)
    if job.outro is not None:
        parts.append(_part(probes, "outro", Path(job.outro), fps))
    if job.music is not None and probes.get("music", Path(job.music)).audio is None:
        raise MediaError(f"music {job.music}: has no audio stream")
    if job.logo is not None and probes.get("logo", Path(job.logo)).video is None:
        raise MediaError(f"logo {job.logo}: is not an image")
    for name, lists in (("cue", job.scene_cues), ("word-boundary", job.scene_words)):
        if lists is not None and len(lists) != len(job.scenes):
            raise MediaError(
                f"{job.out_path.name}: {len(lists)} {name} lists for {len(job.scenes)} scenes"
            )
    return parts


def damaged(log: str) -> str | None:
    """The first line of an ffmpeg log that reports damaged input, or ``None``."""
    for line in log.splitlines():
        if any(marker in line for marker in DAMAGE_MARKERS):
            return line.strip()
    return None


def check_damage(log: str, parts: list[Part]) -> None:
    """Raise naming the damaged part when ffmpeg's log reports truncated or invalid input.

    Raises:
        MediaError: The log reports damage (naming the part when one can be found).
    """
    line = damaged(log)
    if line is None:
        return
    for part in parts:  # error path only: demux each part (no decoding) to find the culprit
        try:
            part_log = run_ffmpeg(
                ["-v", "info", "-i", str(part.path), "-map", "0", "-c", "copy", "-f", "null", "-"],
                what=f"check {part.role}",
            )
        except MediaError as exc:
            raise MediaError(f"{part.role} {part.path}: file is damaged ({exc.message})") from exc
        if damaged(part_log):
            raise MediaError(f"{part.role} {part.path}: file is damaged or truncated")
    raise MediaError(f"an input is damaged or truncated ({line[:160]})")
