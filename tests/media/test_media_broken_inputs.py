"""Broken input: one clear error, nothing left behind."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from avatarpipe.errors import InvalidInputError, MediaError, PresetError
from avatarpipe.media.postprocess import PostJob, render_output
from avatarpipe.media.presets import load_preset

if TYPE_CHECKING:
    from conftest import Clips

SMALL = {"width": 640, "height": 360, "speed": "ultrafast"}


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ("truncated", r"scene 2 .*truncated\.mp4: not a readable media file"),
        ("truncated_faststart", r"scene 1 .*truncated_fs\.mp4: file is damaged or truncated"),
        ("audio_only", r"scene 1 .*voice\.m4a: has no video stream \(audio-only file\)"),
        ("missing_intro", r"intro .*intro-missing\.mp4: no such file"),
        ("music_without_audio", r"music .*intro\.mp4: has no audio stream"),
    ],
)
def test_broken_input_one_error_nothing_left(
    clips: Clips, tmp_path: Path, case: str, pattern: str
) -> None:
    kwargs: dict[str, object] = {
        "truncated": {"scenes": [clips.scene_a, clips.truncated]},
        "truncated_faststart": {"scenes": [clips.truncated_faststart]},
        "audio_only": {"scenes": [clips.audio_only]},
        "missing_intro": {"scenes": [clips.scene_a], "intro": clips.dir / "intro-missing.mp4"},
        "music_without_audio": {"scenes": [clips.scene_a], "music": clips.intro},
    }[case]  # type: ignore[assignment]
    job = PostJob(preset=load_preset("web-1080p", SMALL), out_path=tmp_path / "out.mp4", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(MediaError, match=pattern) as info:
        render_output(job)
    assert "\n" not in info.value.message
    assert list(tmp_path.iterdir()) == []


def test_truncated_faststart_caught_without_loudness_pass(clips: Clips, tmp_path: Path) -> None:
    preset = load_preset("web-1080p", {**SMALL, "loudness.enabled": False, "thumbnail": False})
    with pytest.raises(MediaError, match="damaged or truncated"):
        render_output(
            PostJob(
                scenes=[clips.truncated_faststart], preset=preset, out_path=tmp_path / "out.mp4"
            )
        )
    assert list(tmp_path.iterdir()) == []


def test_bad_colour_and_unknown_preset_are_input_errors() -> None:
    with pytest.raises(PresetError, match="pad_color: '#GG0000' is not a colour") as info:
        load_preset("web-1080p", {"pad_color": "#GG0000"})
    assert isinstance(info.value, InvalidInputError) and info.value.exit_code == 2
    with pytest.raises(
        PresetError, match="unknown preset 'social-vertikal'.*did you mean 'social-vertical'"
    ):
        load_preset("social-vertikal")


def test_existing_final_file_untouched_on_failure(clips: Clips, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous good output")
    with pytest.raises(MediaError):
        render_output(
            PostJob(scenes=[clips.audio_only], preset=load_preset("web-1080p", SMALL), out_path=out)
        )
    assert out.read_bytes() == b"previous good output"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_wrong_suffix_for_preset(clips: Clips, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="writes .mp4 files"):
        render_output(
            PostJob(
                scenes=[clips.scene_a],
                preset=load_preset("web-1080p", SMALL),
                out_path=tmp_path / "out.webm",
            )
        )
