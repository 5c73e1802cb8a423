"""Tiny real media made with ffmpeg's lavfi sources (shared by the media tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from avatarpipe.media.ffmpeg import run_ffmpeg

# Speech-like audio: a 180 Hz tone with harmonics, amplitude-modulated at syllable rate (4 Hz),
# with short pauses, so loudness gating and sidechain ducking behave as with a voice.
SPEECH = (
    "aevalsrc='0.25*(sin(2*PI*180*t)+0.5*sin(2*PI*360*t)+0.25*sin(2*PI*540*t))"
    "*(0.55+0.45*sin(2*PI*4*t))*gt(mod(t\\,1.25)\\,0.15)':s=48000:d={d}"
)


@dataclass(frozen=True)
class Clips:
    dir: Path
    scene_a: Path  # 640x360 25 fps h264/aac 48k stereo, 2 s
    scene_b: Path  # same parameters, 1 s
    scene_hevc: Path  # 640x360 25 fps hevc/aac (the service's default codec), 1 s
    intro: Path  # 320x240 30 fps, no audio, 1 s
    outro: Path  # 480x480 24 fps, 44.1 kHz mono audio, 1 s
    music: Path  # mp3, 1.5 s (shorter than outputs: must loop)
    logo: Path  # 120x60 RGBA png
    audio_only: Path  # m4a, 1 s
    truncated: Path  # scene_a cut in half (moov at the end: unreadable)
    truncated_faststart: Path  # faststart mp4 cut at 60 % (index fine, data missing)


def _make(args: list[str]) -> None:
    run_ffmpeg(["-v", "error", "-y", *args], what="make test clip")


def _av(
    out: Path,
    *,
    size: str,
    rate: int,
    dur: float,
    src: str = "testsrc",
    vcodec: str = "libx264",
    audio: str | None = None,
    extra: list[str] | None = None,
) -> Path:
    args = ["-f", "lavfi", "-i", f"{src}=s={size}:r={rate}:d={dur}"]
    if audio is not None:
        args += ["-f", "lavfi", "-i", audio]
    args += ["-c:v", vcodec, "-pix_fmt", "yuv420p"]
    if vcodec == "libx264":
        args += ["-preset", "ultrafast"]
    else:
        args += ["-preset", "ultrafast", "-x265-params", "log-level=error"]
    if audio is not None:
        args += ["-c:a", "aac", "-b:a", "96k", "-shortest"]
    _make([*args, *(extra or []), str(out)])
    return out


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    d = tmp_path_factory.mktemp("clips")
    a = _av(
        d / "scene_a.mp4",
        size="640x360",
        rate=25,
        dur=2,
        audio=SPEECH.format(d=2) + ",aformat=channel_layouts=stereo",
    )
    b = _av(
        d / "scene_b.mp4",
        size="640x360",
        rate=25,
        dur=1,
        src="testsrc2",
        audio=SPEECH.format(d=1) + ",aformat=channel_layouts=stereo",
    )
    hevc = _av(
        d / "scene_hevc.mp4",
        size="640x360",
        rate=25,
        dur=1,
        vcodec="libx265",
        audio=SPEECH.format(d=1) + ",aformat=channel_layouts=stereo",
    )
    intro = _av(d / "intro.mp4", size="320x240", rate=30, dur=1, src="smptebars")
    outro = _av(
        d / "outro.mp4",
        size="480x480",
        rate=24,
        dur=1,
        src="rgbtestsrc",
        audio="sine=f=330:sample_rate=44100:d=1,volume=0.2",
    )
    music = d / "music.mp3"
    _make(["-f", "lavfi", "-i", "sine=f=523:d=1.5,volume=0.5", "-c:a", "libmp3lame", str(music)])
    logo = d / "logo.png"
    _make(
        [
            "-f",
            "lavfi",
            "-i",
            "color=c=0x2050C0@0.8:s=120x60,format=rgba",
            "-frames:v",
            "1",
            str(logo),
        ]
    )
    audio_only = d / "voice.m4a"
    _make(["-f", "lavfi", "-i", SPEECH.format(d=1), "-c:a", "aac", str(audio_only)])
    truncated = d / "truncated.mp4"
    data = a.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    fs = _av(
        d / "fs.mp4",
        size="640x360",
        rate=25,
        dur=2,
        audio=SPEECH.format(d=2),
        extra=["-movflags", "+faststart"],
    )
    truncated_fs = d / "truncated_fs.mp4"
    data = fs.read_bytes()
    truncated_fs.write_bytes(data[: int(len(data) * 0.6)])
    fs.unlink()
    return Clips(d, a, b, hevc, intro, outro, music, logo, audio_only, truncated, truncated_fs)
