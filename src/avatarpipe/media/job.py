"""What post-processing is asked to make (`PostJob`) and what it made (`OutputResult`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatarpipe.media.ffmpeg import MediaInfo
from avatarpipe.media.loudness import Loudness
from avatarpipe.media.presets import Preset
from avatarpipe.media.subtitles import Cue

__all__ = ["OutputResult", "PartInfo", "PostJob"]


@dataclass
class PostJob:
    """One finished output to make.

    Attributes:
        scenes: The service's videos, in order (each needs a video and an audio stream).
        preset: What the output looks like (see :func:`avatarpipe.media.presets.load_preset`).
        out_path: The final file name; its directory must exist.
        intro: A clip played before the scenes (any size/rate; conformed).
        outro: A clip played after the scenes (any size/rate; conformed).
        music: Background music, looped under the whole output and ducked under speech.
        logo: An image overlaid per ``preset.logo``.
        scene_cues: One cue list per scene, each on its scene's own timeline (e.g. from
            :func:`~avatarpipe.media.subtitles.cues_from_word_boundaries` or
            :func:`~avatarpipe.media.subtitles.parse_subtitles`); placed by the real scene starts.
        scene_words: Instead of ``scene_cues``: one word-boundary list per scene (the Azure
            ``[{"Text", "AudioOffset", "Duration"}]`` shape, ms); cues are built with the
            preset's ``subtitle_style.max_chars``/``max_lines``.
        timeout_s: Seconds each ffmpeg process may run.
        threads: Encoder threads (``None``: ffmpeg's default, all cores).
        cache_dir: Where an intro/outro conformed to the scenes' stream parameters is kept, so it
            is encoded once for every run (``None``: a temporary folder, nothing is kept).
    """

    scenes: Sequence[Path]
    preset: Preset
    out_path: Path
    intro: Path | None = None
    outro: Path | None = None
    music: Path | None = None
    logo: Path | None = None
    scene_cues: Sequence[Sequence[Cue]] | None = None
    scene_words: Sequence[Sequence[Mapping[str, Any]]] | None = None
    timeout_s: float | None = 3600.0
    threads: int | None = None
    cache_dir: Path | None = None


@dataclass(frozen=True)
class PartInfo:
    """One input part of an output as it was used.

    Attributes:
        role: ``intro``, ``scene 1``... or ``outro``.
        path: The file.
        duration_s: Duration used (frame-aligned to the output rate).
        start_s: Where it starts in the output.
        has_audio: Whether it had audio (silence is used otherwise).
    """

    role: str
    path: Path
    duration_s: float
    start_s: float
    has_audio: bool


@dataclass
class OutputResult:
    """What post-processing made, for the run manifest.

    Attributes:
        path: The final video.
        preset: The preset used (with overrides applied).
        info: The probe of the final video.
        duration_s: Measured duration (every packet read).
        expected_duration_s: Sum of the parts' durations.
        parts: The parts, with where each starts.
        loudness_measured: Pass 1 ``ebur128`` values of the mix before normalisation (``None``
            when normalisation was off).
        loudness_mode: ``linear`` (one gain), ``dynamic`` (loudnorm had to compress to respect
            the true-peak ceiling or LRA), ``silent`` (nothing to normalise) or ``off``.
        loudness_after: ``ebur128`` measurement of the output's audio.
        sha256: Hex digest of the final video.
        size_bytes: Size of the final video.
        subtitle_files: Sidecar ``.srt``/``.vtt`` files (when there were cues).
        thumbnail: The poster PNG, when made.
        contact_sheet: The contact sheet PNG, when made.
        elapsed_s: Wall time of the pass that made it (shared by the outputs of one pass).
        cues: The cues on the output's timeline.
        copied_streams: The kinds of stream taken over from the input without re-encoding
            (``video``, ``audio``).
        video_reencoded_because: Why the picture was re-encoded (``None`` when it was copied).
        pass_outputs: How many outputs the ffmpeg pass that made this one wrote.
    """

    path: Path
    preset: Preset
    info: MediaInfo
    duration_s: float
    expected_duration_s: float
    parts: list[PartInfo]
    loudness_measured: Loudness | None
    loudness_after: Loudness | None
    loudness_mode: str
    sha256: str
    size_bytes: int
    subtitle_files: list[Path] = field(default_factory=list)
    thumbnail: Path | None = None
    contact_sheet: Path | None = None
    elapsed_s: float = 0.0
    cues: list[Cue] = field(default_factory=list)
    copied_streams: list[str] = field(default_factory=list)
    video_reencoded_because: str | None = None
    pass_outputs: int = 1

    def to_manifest(self) -> dict[str, Any]:
        """Return a JSON-safe summary for ``manifest.json``."""
        video, audio = self.info.video, self.info.audio
        ln = self.preset.loudness
        return {
            "path": str(self.path),
            "preset": self.preset.name,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "duration_s": round(self.duration_s, 3),
            "expected_duration_s": round(self.expected_duration_s, 3),
            "video": {
                "codec": video.codec if video else None,
                "width": video.width if video else None,
                "height": video.height if video else None,
                "fps": video.fps if video else None,
                "copied": "video" in self.copied_streams,
                "reencoded_because": self.video_reencoded_because,
            },
            "audio": {
                "codec": audio.codec if audio else None,
                "sample_rate": audio.sample_rate if audio else None,
                "copied": "audio" in self.copied_streams,
            },
            "streams": [s.kind for s in self.info.streams],
            "copied_streams": list(self.copied_streams),
            "pass_outputs": self.pass_outputs,
            "parts": [
                {
                    "role": p.role,
                    "path": str(p.path),
                    "start_s": round(p.start_s, 3),
                    "duration_s": round(p.duration_s, 3),
                    "has_audio": p.has_audio,
                }
                for p in self.parts
            ],  # fmt: skip
            "loudness": {
                "target_lufs": ln.target_lufs if ln.enabled else None,
                "target_true_peak_dbtp": ln.true_peak_dbtp,
                "mode": self.loudness_mode,
                "measured_pass1": self.loudness_measured.as_dict()
                if self.loudness_measured
                else None,
                "after": self.loudness_after.as_dict() if self.loudness_after else None,
            },
            "subtitles": [str(p) for p in self.subtitle_files],
            "thumbnail": str(self.thumbnail) if self.thumbnail else None,
            "contact_sheet": str(self.contact_sheet) if self.contact_sheet else None,
            "elapsed_s": round(self.elapsed_s, 3),
        }
