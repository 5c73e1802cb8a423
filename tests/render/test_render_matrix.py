"""Every format/codec/subtitle combination the service allows renders a correct, probed file."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from avatarpipe.emulator.render import AvatarRenderer
from avatarpipe.emulator.rendering import RenderSpec
from avatarpipe.errors import RequestValidationError
from avatarpipe.media.ffmpeg import probe

SHORT_TEXT = "Hello world, this is a test."
PAIRS = [("mp4", "h264"), ("mp4", "hevc"), ("mp4", "av1"), ("webm", "vp9"), ("webm", "av1")]
SUBTITLES = ["soft_embedded", "hard_embedded", "external_file", "none"]
AUDIO_CODEC = {"mp4": "aac", "webm": "opus"}
SOFT_CODEC = {"mp4": "mov_text", "webm": "webvtt"}
INPUT_WORDS = re.findall(r"[\w']+", SHORT_TEXT)


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _check_video(
    video: Path,
    *,
    fmt: str,
    codec: str,
    size: tuple[int, int],
    duration_ms: int,
    audio_stats: Callable[[Path], Any],
) -> None:
    info = probe(video, exact=True)
    assert fmt in info.format_name
    assert video.suffix == f".{fmt}"
    v = info.video
    assert v is not None
    assert v.codec == codec
    assert (v.width, v.height) == size
    assert v.fps == 25
    a = info.audio
    assert a is not None and a.codec == AUDIO_CODEC[fmt]
    assert abs(info.duration_s - duration_ms / 1000) <= 0.1
    stats = audio_stats(video)
    assert abs(stats.duration_s - duration_ms / 1000) <= 0.1
    assert stats.mean_db > -50, f"audio is silent ({stats.mean_db} dB)"


@pytest.mark.parametrize("subtitles", SUBTITLES)
@pytest.mark.parametrize(("fmt", "codec"), PAIRS, ids=[f"{f}-{c}" for f, c in PAIRS])
def test_allowed_combination_renders(
    renderer: AvatarRenderer,
    tmp_path: Path,
    audio_stats: Callable[[Path], Any],
    fmt: str,
    codec: str,
    subtitles: str,
) -> None:
    spec = RenderSpec(
        content=SHORT_TEXT,
        video_format=fmt,  # type: ignore[arg-type]
        video_codec=codec,  # type: ignore[arg-type]
        subtitle_type=subtitles,  # type: ignore[arg-type]
        bitrate_kbps=1000,
        word_boundary=True,
        sentence_boundary=True,
    )
    out = renderer.render(spec, tmp_path, "0001")
    assert out.video == tmp_path / f"0001.{fmt}"
    assert out.size_bytes == out.video.stat().st_size > 0
    assert out.characters == len(SHORT_TEXT)
    _check_video(
        out.video,
        fmt=fmt,
        codec=codec,
        size=(1920, 1080),
        duration_ms=out.duration_ms,
        audio_stats=audio_stats,
    )
    subs = probe(out.video).of_kind("subtitle")
    vtt = tmp_path / "0001.vtt"
    if subtitles == "soft_embedded":
        assert [s.codec for s in subs] == [SOFT_CODEC[fmt]]
    else:
        assert subs == []
    if subtitles == "external_file":
        assert vtt in out.extra_files
        body = vtt.read_text(encoding="utf-8")
        assert body.startswith("WEBVTT")
        assert "Hello world, this is a test." in body
    else:
        assert not vtt.exists()

    words = json.loads((tmp_path / "0001.word.json").read_text(encoding="utf-8"))
    assert [w["Text"] for w in words] == INPUT_WORDS
    offsets = [w["AudioOffset"] for w in words]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    for w in words:
        assert w["Duration"] > 0
        assert w["AudioOffset"] + w["Duration"] <= out.duration_ms
    sentences = json.loads((tmp_path / "0001.sentence.json").read_text(encoding="utf-8"))
    assert [s["Text"] for s in sentences] == [SHORT_TEXT]
    # The speech is the video: the last word ends less than a second before the end.
    last_end = words[-1]["AudioOffset"] + words[-1]["Duration"]
    assert out.duration_ms - last_end < 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "partial files left"


def test_transparent_webm_vp9_carries_alpha(
    renderer: AvatarRenderer,
    tmp_path: Path,
    audio_stats: Callable[[Path], Any],
    frame_png: Callable[..., Path],
) -> None:
    from PIL import Image

    spec = RenderSpec(
        content=SHORT_TEXT,
        video_format="webm",
        video_codec="vp9",
        background_color="#00000000",
        subtitle_type="none",
    )
    out = renderer.render(spec, tmp_path, "0001")
    _check_video(
        out.video,
        fmt="webm",
        codec="vp9",
        size=(1920, 1080),
        duration_ms=out.duration_ms,
        audio_stats=audio_stats,
    )
    v = probe(out.video).video
    assert v is not None and v.alpha
    frame = Image.open(frame_png(out.video, 0.5, tmp_path / "f.png", alpha=True)).convert("RGBA")
    alpha = frame.getchannel("A")
    assert _int(alpha.getpixel((20, 20))) < 10  # background: transparent
    assert _int(alpha.getpixel((960, 1000))) > 245  # the presenter's body: opaque


@pytest.mark.parametrize("codec", ["h264", "hevc", "vp9"])
def test_photo_avatar_is_512_square(
    renderer: AvatarRenderer,
    tmp_path: Path,
    audio_stats: Callable[[Path], Any],
    codec: str,
) -> None:
    fmt = "webm" if codec == "vp9" else "mp4"
    spec = RenderSpec(
        content=SHORT_TEXT,
        photo=True,
        character="anika",
        video_format=fmt,  # type: ignore[arg-type]
        video_codec=codec,  # type: ignore[arg-type]
        subtitle_type="hard_embedded",
    )
    out = renderer.render(spec, tmp_path, "0001")
    _check_video(
        out.video,
        fmt=fmt,
        codec=codec,
        size=(512, 512),
        duration_ms=out.duration_ms,
        audio_stats=audio_stats,
    )


@pytest.mark.parametrize(
    ("fmt", "codec", "color", "photo"),
    [
        ("mp4", "vp9", "#FFFFFFFF", False),
        ("webm", "h264", "#FFFFFFFF", False),
        ("webm", "hevc", "#FFFFFFFF", False),
        ("mp4", "h264", "#00000000", False),
        ("mp4", "h264", "transparent", False),
        ("webm", "av1", "#FFFFFF80", False),
        ("mp4", "hevc", "#12345600", False),
        ("mp4", "av1", "#FFFFFFFF", True),
        ("mov", "h264", "#FFFFFFFF", False),
        ("mp4", "h264", "white", False),
        ("mp4", "h264", "#GGGGGGFF", False),
    ],
)
def test_impossible_spec_is_refused_before_rendering(
    renderer: AvatarRenderer, tmp_path: Path, fmt: str, codec: str, color: str, photo: bool
) -> None:
    spec = RenderSpec(
        content=SHORT_TEXT,
        video_format=fmt,  # type: ignore[arg-type]
        video_codec=codec,  # type: ignore[arg-type]
        background_color=color,
        photo=photo,
    )
    with pytest.raises(RequestValidationError) as err:
        renderer.render(spec, tmp_path / "out", "0001")
    assert "avatarConfig." in str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "crop",
    [(0, 0, 1921, 1080), (500, 100, 400, 900), (-1, 0, 100, 100), (0, 0, 8, 8)],
)
def test_bad_crop_is_refused(
    renderer: AvatarRenderer, tmp_path: Path, crop: tuple[int, int, int, int]
) -> None:
    spec = RenderSpec(content=SHORT_TEXT, video_codec="h264", video_crop=crop)
    with pytest.raises(RequestValidationError, match="videoCrop"):
        renderer.render(spec, tmp_path, "0001")
