from __future__ import annotations

from pathlib import Path

import pytest

from avatarpipe.errors import InvalidInputError
from avatarpipe.media.subtitles import (
    Cue,
    cues_from_word_boundaries,
    join_scene_cues,
    parse_subtitles,
    to_ass,
    to_srt,
    to_vtt,
    write_subtitles,
)


def words(text: str, start: int = 100, step: int = 300) -> list[dict[str, object]]:
    return [
        {"Text": w, "AudioOffset": start + i * step, "Duration": step - 50}
        for i, w in enumerate(text.split())
    ]


def test_sentences_split_and_lines_fit() -> None:
    wb = words(
        "Welcome to the quarterly update. Revenue grew twelve percent this quarter, "
        "driven by strong demand for our cloud services in every single region we serve."
    )
    cues = cues_from_word_boundaries(wb, max_chars=42, max_lines=2)
    assert cues[0].text == "Welcome to the quarterly update."
    assert cues[0].start_ms == 100
    assert cues[0].end_ms == 100 + 4 * 300 + 250
    for cue in cues:
        lines = cue.text.split("\n")
        assert len(lines) <= 2
        assert all(len(line) <= 42 for line in lines)
    # every word appears once, in order, and inside its cue's time span
    flat = " ".join(c.text.replace("\n", " ") for c in cues).split()
    assert flat == [str(w["Text"]) for w in wb]
    i = 0
    for cue in cues:
        for _ in cue.text.replace("\n", " ").split():
            w = wb[i]
            assert cue.start_ms <= int(w["AudioOffset"]) < cue.end_ms  # type: ignore[call-overload]
            i += 1
    assert all(a.end_ms <= b.start_ms for a, b in zip(cues, cues[1:], strict=False))


def test_punctuation_boundary_attaches_and_pause_splits() -> None:
    wb = [
        {"Text": "Hello", "AudioOffset": 0, "Duration": 300, "BoundaryType": "WordBoundary"},
        {"Text": ",", "AudioOffset": 300, "Duration": 0, "BoundaryType": "PunctuationBoundary"},
        {"Text": "world", "AudioOffset": 400, "Duration": 300},
        {"Text": "again", "AudioOffset": 3000, "Duration": 300},
    ]
    cues = cues_from_word_boundaries(wb)
    assert [c.text for c in cues] == ["Hello, world", "again"]
    assert cues[0].end_ms == 700


def test_bad_boundary_is_one_clear_error() -> None:
    with pytest.raises(InvalidInputError, match=r"word boundary \[1\]"):
        cues_from_word_boundaries([{"Text": "a", "AudioOffset": 0, "Duration": 1}, {"Text": "b"}])


def test_srt_vtt_round_trip(tmp_path: Path) -> None:
    cues = [Cue(0, 1500, "Hello world."), Cue(3_723_004, 3_725_000, "two\nlines")]
    assert "01:02:03,004 --> 01:02:05,000" in to_srt(cues)
    assert to_vtt(cues).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello world.")
    for suffix in (".srt", ".vtt"):
        path = write_subtitles(cues, tmp_path / f"subs{suffix}")
        assert parse_subtitles(path) == cues
    with pytest.raises(InvalidInputError):
        write_subtitles(cues, tmp_path / "subs.txt")


def test_parse_vtt_with_settings_and_notes() -> None:
    text = (
        "WEBVTT\n\nNOTE made by hand\n\nid-1\n00:01.000 --> 00:02.500 line:90%\nHi\n\n"
        "00:00:03.000 --> 00:00:04.000\nthere\n"
    )
    assert parse_subtitles(text) == [Cue(1000, 2500, "Hi"), Cue(3000, 4000, "there")]
    with pytest.raises(InvalidInputError, match="no subtitle cues"):
        parse_subtitles("WEBVTT\n\n")


def test_join_scene_cues_offsets_and_clips() -> None:
    scene1 = [Cue(0, 900, "a"), Cue(1000, 2500, "b")]  # b runs past scene 1's end (2000)
    scene2 = [Cue(100, 500, "c")]
    joined = join_scene_cues([scene1, scene2], [1000, 3000, 4000])
    assert joined == [Cue(1000, 1900, "a"), Cue(2000, 3000, "b"), Cue(3100, 3500, "c")]
    with pytest.raises(InvalidInputError):
        join_scene_cues([scene1], [0])


def test_ass_is_sized_for_the_picture() -> None:
    ass = to_ass([Cue(0, 1000, "x\ny")], width=1080, height=1920, size_pct=5, color="#FFFF00")
    assert "PlayResX: 1080\nPlayResY: 1920" in ass
    assert "Style: Default,DejaVu Sans,96,&H0000FFFF," in ass
    assert "Dialogue: 0,0:00:00.00,0:00:01.00,Default,,0,0,0,,x\\Ny" in ass
