from __future__ import annotations

from pathlib import Path

import pytest

from avatarpipe.errors import InvalidInputError, PresetError
from avatarpipe.media.presets import Preset, list_presets, load_preset, parse_color, presets_dir


def test_shipped_presets_all_validate() -> None:
    names = list_presets()
    assert {"web-1080p", "social-vertical", "archive-master"} <= set(names)
    for name in names:
        preset = load_preset(name)
        assert isinstance(preset, Preset)
        assert preset.name == name


def test_web_preset_delivers_browser_codecs() -> None:
    p = load_preset("web-1080p")
    assert (p.width, p.height, p.aspect) == (1920, 1080, "16:9")
    assert (p.container, p.video_codec, p.audio_codec, p.faststart) == ("mp4", "h264", "aac", True)
    assert (p.loudness.target_lufs, p.loudness.true_peak_dbtp) == (-16.0, -1.5)


def test_overrides_nested_and_dotted() -> None:
    nested = load_preset("web-1080p", {"loudness": {"target_lufs": -14}, "speed": "ultrafast"})
    dotted = load_preset("web-1080p", {"loudness.target_lufs": -14, "speed": "ultrafast"})
    assert nested == dotted
    assert nested.loudness.target_lufs == -14
    assert nested.loudness.true_peak_dbtp == -1.5  # untouched sibling kept


def test_unknown_preset_suggests_close_name() -> None:
    with pytest.raises(
        PresetError, match=r"unknown preset 'web-108p' \(did you mean 'web-1080p'\?"
    ):
        load_preset("web-108p")


def test_bad_colour_names_the_field() -> None:
    with pytest.raises(PresetError, match=r"override pad_color: 'blurple' is not a colour"):
        load_preset("web-1080p", {"pad_color": "blurple"})
    with pytest.raises(PresetError, match=r"subtitle_style\.color"):
        load_preset("social-vertical", {"subtitle_style.color": "#12345"})


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"bogus": 1}, "bogus: unknown field"),
        ({"loudness": {"target_lufs": "loud"}}, "loudness.target_lufs"),
        ({"width": 641}, "width: 641 must be even"),
        ({"aspect": "9:16"}, "aspect 9:16 does not match 1920x1080"),
        ({"crf": 20}, "either video_bitrate_kbps or crf"),
        ({"subtitles": "maybe"}, "subtitles"),
    ],
)
def test_invalid_override_names_field(override: dict[str, object], field: str) -> None:
    with pytest.raises(PresetError) as info:
        load_preset("web-1080p", override)
    assert field in str(info.value)
    assert isinstance(info.value, InvalidInputError)


def test_preset_file_path_and_name_mismatch(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text((presets_dir() / "web-720p.yaml").read_text().replace("web-720p", "mine"))
    assert load_preset(good).name == "mine"
    bad = tmp_path / "other.yaml"
    bad.write_text("name: different\nwidth: 640\nheight: 360\naspect: '16:9'\n")
    with pytest.raises(PresetError, match="must match the file name"):
        load_preset(bad)
    with pytest.raises(PresetError, match="does not exist"):
        load_preset(tmp_path / "missing.yaml")


def test_aspect_variants_keep_short_side() -> None:
    p = load_preset("web-1080p")
    assert (p.for_aspect("9:16").width, p.for_aspect("9:16").height) == (1080, 1920)
    assert (p.for_aspect("1:1").width, p.for_aspect("1:1").height) == (1080, 1080)
    assert p.for_aspect("16:9") is p
    v = load_preset("social-vertical").for_aspect("16:9")
    assert (v.width, v.height) == (1920, 1080)


def test_parse_color() -> None:
    assert parse_color("white") == "#FFFFFF"
    assert parse_color("0x1a2b3c") == "#1A2B3C"
    assert parse_color("#1a2b3c80") == "#1A2B3C80"
    with pytest.raises(ValueError):
        parse_color("#12")
