"""The presenter: looks, lip sync, blinks, backgrounds, crops, burned subtitles, summary entries."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest
from PIL import Image, ImageChops

from avatarpipe.emulator.render import AvatarRenderer, summary_result
from avatarpipe.emulator.render.avatar import VISEMES, look_for, sprites_for
from avatarpipe.emulator.render.speech import MarkTiming, synthesize
from avatarpipe.emulator.render.ssml import parse_input
from avatarpipe.emulator.render.timeline import (
    blink_frames,
    build_cues,
    frame_visemes,
    gesture_expr,
    viseme_of,
    write_head_track,
)
from avatarpipe.emulator.rendering import RenderSpec
from avatarpipe.media.ffmpeg import probe

TEXT = "Hello world, this is a test."


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_standard_characters_look_distinct_and_custom_names_are_stable(tmp_path: Path) -> None:
    names = ["lisa", "harry", "jeff", "lori", "max", "meg", "contoso-ceo", "another-avatar"]
    looks = [look_for(n) for n in names]
    assert len(set(looks)) == len(names)
    assert look_for("contoso-ceo") == look_for("Contoso-CEO")
    bodies = {
        _digest(sprites_for(n, None, photo=False, cache_dir=tmp_path).heads[("rest", False)])
        for n in names[:4]
    }
    assert len(bodies) == 4


def test_sprites_are_cached_and_complete(tmp_path: Path) -> None:
    a = sprites_for("lisa", "casual-sitting", photo=False, cache_dir=tmp_path)
    stamp = a.body.stat().st_mtime_ns
    b = sprites_for("lisa", "casual-sitting", photo=False, cache_dir=tmp_path)
    assert a == b and b.body.stat().st_mtime_ns == stamp
    assert set(a.heads) == {(v, c) for v in VISEMES for c in (False, True)}
    assert len({_digest(p) for p in a.heads.values()}) == 12  # every mouth/eye state differs
    with Image.open(a.body) as body:
        assert body.size == (1920, 1080) and body.mode == "RGBA"
    photo = sprites_for("lisa", None, photo=True, cache_dir=tmp_path)
    assert photo.canvas == (512, 512)


def test_visemes_follow_phonemes(tmp_path: Path) -> None:
    assert viseme_of("p") == viseme_of("m") == "mbp"
    assert viseme_of("f") == "fv"
    assert viseme_of("oU") == viseme_of("u:") == "round"
    assert viseme_of("a") == viseme_of("aI") == "wide"
    assert viseme_of("s") == "small"
    assert viseme_of("_") == "rest"
    speech = synthesize(
        parse_input("Bob saw a moose, we fought over five apples.", "PlainText"), tmp_path / "s.wav"
    )
    per_frame = frame_visemes(speech.phonemes, speech.frames)
    assert len(per_frame) == speech.frames
    assert set(per_frame) >= {"mbp", "round", "wide", "fv", "small"}
    assert per_frame[-1] == "rest"  # the mouth closes when the speech ends


def test_head_track_has_blinks_and_frame_exact_durations(tmp_path: Path) -> None:
    sprites = sprites_for("meg", None, photo=False, cache_dir=tmp_path / "cache")
    speech = synthesize(
        parse_input(TEXT + " " + TEXT + " " + TEXT, "PlainText"), tmp_path / "s.wav"
    )
    track = tmp_path / "heads.ffconcat"
    write_head_track(sprites.heads, speech.phonemes, speech.frames, "seed", track)
    body = track.read_text(encoding="utf-8")
    durations = [float(d) for d in re.findall(r"^duration (\S+)$", body, re.M)]
    assert round(sum(durations) / 0.04) == speech.frames
    assert all(round(d / 0.04, 6) == round(d / 0.04) for d in durations)
    assert "_closed.png" in body
    blinks = blink_frames(25 * 60, "seed")
    assert 10 <= sum(blinks) // 3 <= 30  # a blink every 2.5-5.5 s over a minute
    assert blink_frames(250, "seed") == blink_frames(250, "seed")


def test_cues_stay_inside_sentences_and_the_video() -> None:
    from avatarpipe.emulator.render.speech import WordTiming

    words = [
        WordTiming("One", 0, 300, 0, "One"),
        WordTiming("two", 300, 300, 0, " two."),
        WordTiming("Three", 1000, 300, 1, " Three"),
        WordTiming("four", 1300, 300, 1, " four!"),
    ]
    cues = build_cues(words, 1800)
    assert [c.text for c in cues] == ["One two.", "Three four!"]
    assert cues[0].end_ms <= cues[1].start_ms and cues[-1].end_ms <= 1800


def test_gestures_nod_the_head() -> None:
    assert gesture_expr([], 10) == "0"
    assert gesture_expr([MarkTiming("not-a-gesture", 100)], 10) == "0"
    expr = gesture_expr([MarkTiming("gesture.wave-left", 1500)], 10)
    assert "between(t,1.500,2.300)" in expr


def _corner(path: Path) -> tuple[int, int, int]:
    with Image.open(path) as img:
        pixel = img.convert("RGB").getpixel((10, 10))
    assert isinstance(pixel, tuple)
    r, g, b = (int(c) for c in pixel[:3])
    return r, g, b


def test_background_colour_image_and_crop(
    renderer: AvatarRenderer, tmp_path: Path, frame_png: Callable[..., Path]
) -> None:
    colour = RenderSpec(
        content=TEXT, video_codec="h264", background_color="#3366CCFF", subtitle_type="none"
    )
    out = renderer.render(colour, tmp_path / "c", "0001")
    r, g, b = _corner(frame_png(out.video, 0.4, tmp_path / "c.png"))
    assert abs(r - 0x33) < 12 and abs(g - 0x66) < 12 and abs(b - 0xCC) < 12

    image = tmp_path / "bg.png"
    Image.new("RGB", (800, 600), (200, 40, 40)).save(image)
    pic = RenderSpec(content=TEXT, video_codec="h264", background_image=image, subtitle_type="none")
    out = renderer.render(pic, tmp_path / "i", "0001")
    r, g, b = _corner(frame_png(out.video, 0.4, tmp_path / "i.png"))
    assert abs(r - 200) < 12 and abs(g - 40) < 12 and abs(b - 40) < 12

    cropped = RenderSpec(content=TEXT, video_codec="h264", video_crop=(100, 100, 1821, 1080))
    out = renderer.render(cropped, tmp_path / "k", "0001")
    v = probe(out.video).video
    assert v is not None and (v.width, v.height) == (1720, 980)  # odd widths round down


def test_burned_subtitles_are_visible(
    renderer: AvatarRenderer, tmp_path: Path, frame_png: Callable[..., Path]
) -> None:
    frames = {}
    kinds: tuple[Literal["none"], Literal["hard_embedded"]] = ("none", "hard_embedded")
    for kind in kinds:
        spec = RenderSpec(content=TEXT, video_codec="h264", subtitle_type=kind)
        out = renderer.render(spec, tmp_path / kind, "0001")
        frames[kind] = Image.open(frame_png(out.video, 0.8, tmp_path / f"{kind}.png")).convert("L")
    bottom = (0, 850, 1920, 1080)
    top = (0, 0, 1920, 80)
    diff_bottom = ImageChops.difference(
        frames["none"].crop(bottom), frames["hard_embedded"].crop(bottom)
    )
    diff_top = ImageChops.difference(frames["none"].crop(top), frames["hard_embedded"].crop(top))
    assert diff_bottom.getbbox() is not None  # text drawn at the bottom
    low, high = diff_top.getextrema()
    assert isinstance(high, int) and high < 16  # and nowhere near the top


@pytest.mark.parametrize("style", ["graceful-sitting", None])
def test_summary_result_shape(style: str | None) -> None:
    spec = RenderSpec(content=TEXT, character="lisa", style=style)
    entry = summary_result(spec, "0123abcd/job-1/0001.mp4")
    assert entry["texts"] == [TEXT]
    assert entry["status"] == "Succeeded"
    assert entry["videoFileName"] == "0123abcd/job-1/0001.mp4"
    assert entry["TalkingAvatarCharacter"] == "lisa"
    assert entry.get("TalkingAvatarStyle") == style


def test_render_input_uses_a_default_renderer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from avatarpipe.emulator.render import render_input

    monkeypatch.setenv("AVATARPIPE_CACHE_DIR", str(tmp_path / "cache"))
    spec = RenderSpec(
        content=parse_input_ssml(),
        input_kind="SSML",
        video_codec="h264",
        subtitle_type="external_file",
        sentence_boundary=True,
    )
    out = render_input(spec, tmp_path / "out", "0007")
    assert out.video.name == "0007.mp4"
    assert sorted(p.name for p in out.extra_files) == ["0007.sentence.json", "0007.vtt"]
    assert (tmp_path / "cache" / "sprites").is_dir()


def parse_input_ssml() -> str:
    return (
        '<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="en-US">'
        '<voice name="en-US-AvaMultilingualNeural">Welcome. <bookmark mark="gesture.wave-left"/>'
        "Let us begin.</voice></speak>"
    )
