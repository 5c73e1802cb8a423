"""Real encodes, checked by probing the outputs (tiny clips; one real 1080p render)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from avatarpipe.errors import MediaError
from avatarpipe.media.ffmpeg import probe, run_ffmpeg
from avatarpipe.media.images import contact_sheet, thumbnail
from avatarpipe.media.loudness import measure_loudness
from avatarpipe.media.postprocess import (
    PostJob,
    concat_copy,
    join_scenes,
    process_outputs,
    render_output,
)
from avatarpipe.media.presets import Preset, load_preset
from avatarpipe.media.subtitles import Cue, cues_from_word_boundaries, parse_subtitles

if TYPE_CHECKING:
    from conftest import Clips

SMALL: dict[str, Any] = {"width": 640, "height": 360, "speed": "ultrafast"}
FRAME = 1 / 25

WB_A = [  # scene_a (2 s)
    {"Text": "Welcome", "AudioOffset": 100, "Duration": 400},
    {"Text": "to", "AudioOffset": 520, "Duration": 100},
    {"Text": "the", "AudioOffset": 640, "Duration": 120},
    {"Text": "update.", "AudioOffset": 780, "Duration": 400},
    {"Text": "Revenue", "AudioOffset": 1300, "Duration": 400},
    {"Text": "grew.", "AudioOffset": 1720, "Duration": 250},
]
WB_B = [  # scene_b (1 s)
    {"Text": "Thank", "AudioOffset": 50, "Duration": 300},
    {"Text": "you.", "AudioOffset": 370, "Duration": 400},
]


def small(name: str = "web-1080p", **extra: Any) -> Preset:
    return load_preset(name, {**SMALL, **extra})


def listing(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


def embedded_cues(video: Path, tmp: Path) -> list[Cue]:
    vtt = tmp / "extracted.vtt"
    run_ffmpeg(["-v", "error", "-y", "-i", str(video), "-map", "0:s:0", "-f", "webvtt", str(vtt)])
    return parse_subtitles(vtt)


def test_full_job_concat_conform_music_logo_soft_subs(clips: Clips, tmp_path: Path) -> None:
    cues_a, cues_b = cues_from_word_boundaries(WB_A), cues_from_word_boundaries(WB_B)
    out = tmp_path / "final.mp4"
    job = PostJob(
        scenes=[clips.scene_a, clips.scene_b],
        intro=clips.intro,  # 320x240 @30, no audio
        outro=clips.outro,  # 480x480 @24, 44.1k mono
        music=clips.music,  # 1.5 s: has to loop over 5 s
        logo=clips.logo,
        scene_cues=[cues_a, cues_b],
        preset=small(),
        out_path=out,
    )
    result = render_output(job)

    # duration: within one frame of the sum of the parts (1 + 2 + 1 + 1 s)
    parts_sum = sum(
        probe(p).duration_s for p in (clips.intro, clips.scene_a, clips.scene_b, clips.outro)
    )
    assert result.expected_duration_s == pytest.approx(parts_sum, abs=FRAME)
    exact = probe(out, exact=True)
    assert exact.duration_s == pytest.approx(parts_sum, abs=FRAME)
    assert [p.start_s for p in result.parts] == pytest.approx([0, 1, 3, 4])

    # streams, codecs, sizes
    info = probe(out)
    assert [s.kind for s in info.streams] == ["video", "audio", "subtitle"]
    assert info.video is not None and info.audio is not None
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", 640, 360)
    assert info.video.fps == 25
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == (
        "aac",
        48000,
        "stereo",
    )
    assert info.of_kind("subtitle")[0].codec == "mov_text"

    # loudness: within 1 LU of -16 LUFS, measured independently with ebur128
    loud = measure_loudness(out)
    assert loud.integrated_lufs == pytest.approx(-16.0, abs=1.0)
    assert loud.true_peak_dbtp <= -1.5 + 0.5
    assert result.loudness_measured is not None and result.loudness_after is not None
    assert result.loudness_measured.integrated_lufs < -20  # the test speech is quieter
    manifest = result.to_manifest()
    assert (
        manifest["loudness"]["measured_pass1"]["integrated_lufs"]
        == result.loudness_measured.integrated_lufs
    )
    assert manifest["loudness"]["mode"] == "linear"

    # subtitle cues: the soft track and the sidecars carry the word boundaries, shifted by the
    # intro (1 s) for scene 1 and by intro + scene 1 (3 s) for scene 2
    expected = [Cue(c.start_ms + 1000, c.end_ms + 1000, c.text) for c in cues_a] + [
        Cue(c.start_ms + 3000, c.end_ms + 3000, c.text) for c in cues_b
    ]
    assert expected[0] == Cue(1100, 2180, "Welcome to the update.")
    got = embedded_cues(out, tmp_path)
    assert [c.text for c in got] == [c.text for c in expected]
    for g, e in zip(got, expected, strict=True):
        assert abs(g.start_ms - e.start_ms) <= 10 and abs(g.end_ms - e.end_ms) <= 10
    assert parse_subtitles(out.with_suffix(".srt")) == expected
    assert parse_subtitles(out.with_suffix(".vtt")) == expected

    # poster and contact sheet; checksum; nothing else left in the directory
    assert Image.open(out.with_suffix(".poster.png")).size == (640, 360)
    assert Image.open(out.with_suffix(".sheet.png")).size == (4 * 160, 3 * 90)
    assert result.size_bytes == out.stat().st_size and len(result.sha256) == 64
    assert listing(tmp_path) == {
        "final.mp4",
        "final.srt",
        "final.vtt",
        "final.poster.png",
        "final.sheet.png",
        "extracted.vtt",
    }


def test_faststart_moves_index_to_front(clips: Clips, tmp_path: Path) -> None:
    out = tmp_path / "fs.mp4"
    render_output(PostJob(scenes=[clips.scene_b], preset=small(thumbnail=False), out_path=out))
    head = out.read_bytes()
    assert 0 < head.find(b"moov") < head.find(b"mdat")


def test_hevc_scene_becomes_real_1080p_h264(clips: Clips, tmp_path: Path) -> None:
    """The unmodified web-1080p preset (the service's default hevc in, browser h264 out)."""
    out = tmp_path / "web.mp4"
    result = render_output(
        PostJob(scenes=[clips.scene_hevc], preset=load_preset("web-1080p"), out_path=out)
    )
    info = probe(out)
    assert info.video is not None and info.audio is not None
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", 1920, 1080)
    assert info.video.pix_fmt == "yuv420p"
    assert info.audio.codec == "aac"
    assert result.duration_s == pytest.approx(1.0, abs=FRAME)
    assert Image.open(out.with_suffix(".sheet.png")).size[0] == 4 * 480


def _frame(video: Path, at: float, tmp: Path) -> Image.Image:
    png = tmp / f"frame-{video.stem}.png"
    run_ffmpeg(["-v", "error", "-y", "-ss", str(at), "-i", str(video), "-frames:v", "1", str(png)])
    return Image.open(png).convert("RGB")


def test_vertical_crop_with_burned_subtitles(clips: Clips, tmp_path: Path) -> None:
    cues = [cues_from_word_boundaries(WB_A)]
    base = small(
        "social-vertical", width=360, height=640, loudness={"enabled": False}, thumbnail=False
    )
    burned = render_output(  # raw word boundaries in, cues built with the preset's style
        PostJob(
            scenes=[clips.scene_a], scene_words=[WB_A], preset=base, out_path=tmp_path / "burn.mp4"
        )
    )
    assert burned.cues == cues[0]
    assert burned.subtitle_files == [tmp_path / "burn.srt", tmp_path / "burn.vtt"]
    plain = render_output(
        PostJob(
            scenes=[clips.scene_a],
            scene_cues=cues,
            preset=base.model_copy(update={"subtitles": "none"}),
            out_path=tmp_path / "plain.mp4",
        )
    )
    assert plain.subtitle_files == [] and not (tmp_path / "plain.srt").exists()
    for r in (burned, plain):
        assert r.info.video is not None
        assert (r.info.video.width, r.info.video.height) == (360, 640)
        assert r.info.video.fps == 30
        assert [s.kind for s in r.info.streams] == ["video", "audio"]  # no soft track
    # the caption is burned into the band below the reframed picture (not over the chest):
    # that band differs while a cue is on screen, the picture above it does not
    assert burned.reframe is not None
    _, top, _, high = burned.reframe["placed"]
    a, b = _frame(burned.path, 0.5, tmp_path), _frame(plain.path, 0.5, tmp_path)
    picture = (0, top, 360, top + high)
    moved = sum(
        abs(x - y)
        for pa, pb in zip(a.crop(picture).getdata(), b.crop(picture).getdata(), strict=True)
        for x, y in zip(pa, pb, strict=True)
    )
    assert moved < 0.01 * 255 * 3 * 360 * high
    box = (0, top + high, 360, 640)
    diff = sum(
        abs(x - y)
        for pa, pb in zip(a.crop(box).getdata(), b.crop(box).getdata(), strict=True)
        for x, y in zip(pa, pb, strict=True)
    )
    assert diff > 50_000


def test_square_pad_uses_pad_colour(clips: Clips, tmp_path: Path) -> None:
    # letterboxing only when the preset asks for it
    preset = small(fit="pad", loudness={"enabled": False}, thumbnail=False).for_aspect("1:1")
    preset = preset.model_copy(update={"pad_color": "#FF0000"})
    assert (preset.width, preset.height) == (360, 360)
    result = render_output(
        PostJob(scenes=[clips.scene_b], preset=preset, out_path=tmp_path / "square.mp4")
    )
    assert result.info.video is not None
    assert (result.info.video.width, result.info.video.height) == (360, 360)
    frame = _frame(result.path, 0.2, tmp_path)
    r, g, b = frame.getpixel((180, 5))  # type: ignore[misc]
    assert r > 200 and g < 60 and b < 60  # the bar above the 16:9 picture


def test_loudness_target_override(clips: Clips, tmp_path: Path) -> None:
    preset = small(loudness={"target_lufs": -23.0, "true_peak_dbtp": -2.0}, thumbnail=False)
    result = render_output(
        PostJob(scenes=[clips.scene_a, clips.scene_b], preset=preset, out_path=tmp_path / "ebu.mp4")
    )
    assert measure_loudness(result.path).integrated_lufs == pytest.approx(-23.0, abs=1.0)
    assert result.duration_s == pytest.approx(3.0, abs=FRAME)


def test_concat_copy_matching_scenes(clips: Clips, tmp_path: Path) -> None:
    out = tmp_path / "joined.mp4"
    info = concat_copy([clips.scene_a, clips.scene_b], out)
    assert info.video is not None and info.video.codec == "h264"
    assert probe(out, exact=True).duration_s == pytest.approx(3.0, abs=FRAME)
    assert [s.kind for s in info.streams] == ["video", "audio"]
    with pytest.raises(MediaError, match="scene 2 .*differ from scene 1"):
        concat_copy([clips.scene_a, clips.scene_hevc], tmp_path / "mixed.mp4")
    assert listing(tmp_path) == {"joined.mp4"}


def test_process_outputs_in_parallel(clips: Clips, tmp_path: Path) -> None:
    preset = small(thumbnail=False, contact_sheet=False)
    jobs = [
        PostJob(scenes=[clips.scene_b], preset=preset, out_path=tmp_path / "a.mp4"),
        PostJob(
            scenes=[clips.scene_b], preset=preset.for_aspect("9:16"), out_path=tmp_path / "b.mp4"
        ),
        PostJob(
            scenes=[clips.scene_b], preset=preset.for_aspect("1:1"), out_path=tmp_path / "c.mp4"
        ),
    ]
    results = process_outputs(jobs, max_parallel=2)
    sizes = [(r.info.video.width, r.info.video.height) for r in results if r.info.video]
    assert sizes == [(640, 360), (360, 640), (360, 360)]
    assert listing(tmp_path) == {"a.mp4", "b.mp4", "c.mp4"}


def test_process_outputs_one_failure_leaves_nothing_of_it(clips: Clips, tmp_path: Path) -> None:
    preset = small(thumbnail=False, contact_sheet=False, loudness={"enabled": False})
    jobs = [
        PostJob(scenes=[clips.scene_b], preset=preset, out_path=tmp_path / "good.mp4"),
        PostJob(scenes=[clips.truncated_faststart], preset=preset, out_path=tmp_path / "bad.mp4"),
    ]
    with pytest.raises(MediaError, match="truncated_fs.mp4: file is damaged or truncated"):
        process_outputs(jobs)
    assert listing(tmp_path) == {"good.mp4"}


def test_standalone_thumbnail_and_contact_sheet(clips: Clips, tmp_path: Path) -> None:
    png = thumbnail(clips.scene_a, tmp_path / "t.png", at_s=1.0)
    assert Image.open(png).size == (640, 360)
    sheet = contact_sheet(clips.scene_a, tmp_path / "s.png", cols=3, rows=2, tile_width=100)
    assert Image.open(sheet).size == (300, 2 * 56)
    with pytest.raises(MediaError, match="no video stream"):
        thumbnail(clips.audio_only, tmp_path / "x.png")
    assert listing(tmp_path) == {"t.png", "s.png"}


def test_measure_loudness_needs_audio(clips: Clips) -> None:
    assert measure_loudness(clips.audio_only).integrated_lufs < -10
    with pytest.raises(MediaError):
        measure_loudness(clips.intro)


def test_join_scenes_copies_or_reencodes(clips: Clips, tmp_path: Path) -> None:
    preset = small(thumbnail=False, contact_sheet=False, loudness={"enabled": False})
    same = join_scenes([clips.scene_a, clips.scene_b], tmp_path / "same.mp4", preset)
    assert same.duration_s == pytest.approx(3.0, abs=FRAME)
    mixed = join_scenes([clips.scene_b, clips.scene_hevc], tmp_path / "mixed.mp4", preset)
    assert mixed.video is not None and mixed.video.codec == "h264"
    assert probe(tmp_path / "mixed.mp4", exact=True).duration_s == pytest.approx(2.0, abs=FRAME)
    assert listing(tmp_path) == {"same.mp4", "mixed.mp4"}
