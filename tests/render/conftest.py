"""Shared fixtures for the renderer tests: one renderer with a per-session sprite cache."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from avatarpipe.emulator.render import AvatarRenderer
from avatarpipe.media.ffmpeg import run_ffmpeg

SHORT_TEXT = "Hello world, this is a test."


@pytest.fixture(scope="session")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> AvatarRenderer:
    cache = tmp_path_factory.mktemp("sprite-cache")
    return AvatarRenderer(cache_dir=cache)


@dataclass(frozen=True)
class AudioStats:
    duration_s: float
    mean_db: float
    max_db: float


def _audio_stats(path: Path) -> AudioStats:
    """Decode only the audio stream: its real length and loudness."""
    log = run_ffmpeg(
        ["-v", "info", "-i", str(path), "-map", "0:a:0", "-af", "volumedetect", "-f", "null", "-"],
        what="audio stats",
    )
    times = re.findall(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)", log)
    h, m, s = times[-1]
    mean = re.search(r"mean_volume: (-?[\d.]+|-inf) dB", log)
    peak = re.search(r"max_volume: (-?[\d.]+|-inf) dB", log)
    assert mean and peak, log[-2000:]
    return AudioStats(
        duration_s=int(h) * 3600 + int(m) * 60 + float(s),
        mean_db=float(mean[1]),
        max_db=float(peak[1]),
    )


def _frame_png(video: Path, at_s: float, dest: Path, *, alpha: bool = False) -> Path:
    """Extract one frame as PNG (with the vp9 alpha plane when ``alpha``)."""
    pre = ["-c:v", "libvpx-vp9"] if alpha else []
    run_ffmpeg(
        [
            "-v",
            "error",
            "-y",
            *pre,
            "-ss",
            f"{at_s:.3f}",
            "-i",
            str(video),
            "-frames:v",
            "1",
            str(dest),
        ],
        what="extract frame",
    )
    return dest


@pytest.fixture(scope="session")
def audio_stats() -> Callable[[Path], AudioStats]:
    return _audio_stats


@pytest.fixture(scope="session")
def frame_png() -> Callable[..., Path]:
    return _frame_png
