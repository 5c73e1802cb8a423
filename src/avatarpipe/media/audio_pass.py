"""The audio of an output: parts conformed and joined, music mixed in, loudness normalised.

Loudness is two-pass. Pass 1 (:func:`measure_mix`) runs the exact audio graph of the output
into ``ebur128`` (audio only: the picture is not decoded). The render then applies one of:

* ``linear``: one gain (``volume``) reaches the target and the true peak stays under the
  ceiling *minus* :data:`TRUE_PEAK_MARGIN_DB`. The margin is there because the audio encoder
  (AAC/Opus) reshapes the peaks after the filter: aimed exactly at the ceiling, outputs have
  been measured up to 0.2 dB over it once encoded; with the margin they end under it;
* ``dynamic``: ``loudnorm`` with the measured values and the same lowered ceiling, when a gain
  alone would push the peaks over it (or the loudness range is over the preset's ``lra``);
* ``silent`` / ``off``: nothing to normalise / normalisation disabled.

The written file is measured again by the verification read (see
:mod:`avatarpipe.media.verify`), and the manifest holds both measurements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from avatarpipe.media.ffmpeg import run_ffmpeg
from avatarpipe.media.loudness import Loudness, parse_ebur128
from avatarpipe.media.parts import Part, check_damage
from avatarpipe.media.presets import Preset

__all__ = ["TRUE_PEAK_MARGIN_DB", "AudioKey", "LoudnessPlan", "audio_chain", "measure_mix"]

TRUE_PEAK_MARGIN_DB = 0.5


@dataclass(frozen=True)
class AudioKey:
    """Everything that shapes an output's audio before encoding: equal keys, equal audio.

    Attributes:
        sample_rate: The preset's sample rate.
        music: The music file, if any.
        music_spec: The preset's music settings (a hashable dump).
        loudness: The preset's loudness settings (a hashable dump).
    """

    sample_rate: int
    music: Path | None
    music_spec: tuple[tuple[str, Any], ...]
    loudness: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, preset: Preset, music: Path | None) -> AudioKey:
        """The key of an output made with ``preset`` and ``music``."""
        return cls(
            preset.sample_rate,
            Path(music) if music is not None else None,
            tuple(sorted(preset.music.model_dump().items())),
            tuple(sorted(preset.loudness.model_dump().items())),
        )


def audio_chain(
    preset: Preset, music: Path | None, parts: Sequence[Part], streams: Sequence[Any]
) -> Any:
    """The output's audio before loudness normalisation (an ``ffmpeg-python`` stream).

    Args:
        preset: The output's preset.
        music: Background music, or ``None``.
        parts: The parts in order.
        streams: One audio stream per part (``None`` for a part without audio: silence).

    Returns:
        The conformed parts concatenated, with the music looped, ducked and mixed in.
    """
    p = preset
    total = sum(part.duration_s for part in parts)
    segments = []
    for part, stream in zip(parts, streams, strict=True):
        a = stream
        if a is None:
            a = ffmpeg.input(f"anullsrc=r={p.sample_rate}:cl=stereo", f="lavfi").audio
        a = (
            a.filter("aresample", p.sample_rate)
            .filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
            .filter("apad")
            .filter("atrim", duration=f"{part.duration_s:.6f}")
            .filter("asetpts", "PTS-STARTPTS")
        )
        segments.append(a)
    speech = segments[0] if len(segments) == 1 else ffmpeg.concat(*segments, v=0, a=1)
    if music is None:
        return speech
    m = p.music
    bed = (
        ffmpeg.input(str(music), stream_loop=-1)
        .audio.filter("aresample", p.sample_rate)
        .filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
        .filter("atrim", duration=f"{total:.6f}")
        .filter("volume", f"{m.gain_db}dB")
    )
    if m.fade_out_s > 0 and total > m.fade_out_s:
        bed = bed.filter("afade", t="out", st=f"{total - m.fade_out_s:.3f}", d=m.fade_out_s)
    if m.duck:
        split = speech.filter_multi_output("asplit", 2)
        speech, key = split[0], split[1]
        bed = ffmpeg.filter(
            [bed, key],
            "sidechaincompress",
            threshold=m.threshold,
            ratio=m.ratio,
            attack=m.attack_ms,
            release=m.release_ms,
        )
    return ffmpeg.filter([speech, bed], "amix", inputs=2, duration="first", normalize=0)


def measure_mix(
    preset: Preset, music: Path | None, parts: Sequence[Part], *, what: str, timeout: float | None
) -> Loudness:
    """Loudness pass 1: the output's audio graph into ``ebur128`` (no video is decoded).

    Raises:
        MediaError: ffmpeg fails or reports damaged input (naming the part).
    """
    inputs = [ffmpeg.input(str(part.path)) for part in parts]
    streams = [
        inp.audio if part.info.audio else None for part, inp in zip(parts, inputs, strict=True)
    ]
    audio = audio_chain(preset, music, parts, streams)
    audio = audio.filter("ebur128", peak="true", framelog="verbose")
    args = audio.output("-", f="null").global_args("-v", "info").get_args()
    log = run_ffmpeg(args, what=f"loudness pass 1 for {what}", timeout=timeout)
    check_damage(log, list(parts))
    return parse_ebur128(log)


@dataclass(frozen=True)
class LoudnessPlan:
    """How the render pass treats the loudness of one output.

    Attributes:
        mode: ``linear``, ``dynamic``, ``silent`` or ``off`` (see the module docstring).
        measured: Pass 1's measurement (``None`` when off).
        gain_db: The gain of ``linear`` mode.
        ceiling_dbtp: The true-peak ceiling handed to the filters (the preset's minus the margin).
    """

    mode: str
    measured: Loudness | None = None
    gain_db: float = 0.0
    ceiling_dbtp: float = 0.0

    @classmethod
    def decide(cls, preset: Preset, measured: Loudness | None) -> LoudnessPlan:
        """Choose the mode for ``measured`` (``None``: normalisation is off)."""
        ln = preset.loudness
        if measured is None or not ln.enabled:
            return cls("off")
        if not math.isfinite(measured.integrated_lufs) or measured.integrated_lufs < -69:
            return cls("silent", measured)
        ceiling = ln.true_peak_dbtp - TRUE_PEAK_MARGIN_DB
        gain = ln.target_lufs - measured.integrated_lufs
        linear = measured.true_peak_dbtp + gain <= ceiling and max(measured.lra, 0.1) <= ln.lra
        return cls("linear" if linear else "dynamic", measured, gain, ceiling)

    def apply(self, preset: Preset, audio: Any) -> Any:
        """Append the normalisation filters to ``audio`` (unchanged when off or silent)."""
        if self.mode == "linear":
            return audio.filter("volume", f"{self.gain_db:.3f}dB")
        if self.mode != "dynamic" or self.measured is None:
            return audio
        m, ln = self.measured, preset.loudness
        return audio.filter(
            "loudnorm",
            I=ln.target_lufs,
            TP=f"{self.ceiling_dbtp:.2f}",
            LRA=ln.lra,
            measured_I=f"{m.integrated_lufs:.2f}",
            measured_TP=f"{min(m.true_peak_dbtp, 99.0):.2f}",
            # loudnorm falls back to dynamic mode when measured_LRA is exactly 0 (a steady tone).
            measured_LRA=f"{max(m.lra, 0.1):.2f}",
            measured_thresh=f"{max(m.threshold_lufs, -69.99):.2f}",
            print_format="summary",
        ).filter("aresample", preset.sample_rate)  # loudnorm works (and outputs) at 192 kHz
