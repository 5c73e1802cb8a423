"""Speech: plain text and SSML into timed audio through the real eSpeak NG library."""

from __future__ import annotations

import json
import threading
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from avatarpipe.emulator.render import AvatarRenderer
from avatarpipe.emulator.render.speech import SAMPLE_RATE, espeak_voice_for, synthesize
from avatarpipe.emulator.render.ssml import (
    Bookmark,
    Pause,
    Say,
    parse_input,
    parse_pitch,
    parse_rate,
    parse_volume,
)
from avatarpipe.emulator.rendering import RenderSpec
from avatarpipe.errors import RequestValidationError
from avatarpipe.media.ffmpeg import probe

NS = 'xmlns="http://www.w3.org/2001/10/synthesis" xmlns:mstts="https://www.w3.org/2001/mstts"'


def _ssml(body: str, lang: str = "en-US") -> str:
    return f'<speak version="1.0" {NS} xml:lang="{lang}">{body}</speak>'


def _speak(tmp_path: Path, content: str, kind: str = "PlainText", **kw: Any) -> Any:
    return synthesize(
        parse_input(content, kind, **kw), tmp_path / f"s{len(list(tmp_path.iterdir()))}.wav"
    )


def test_wav_is_mono_16bit_22050_and_whole_frames(tmp_path: Path) -> None:
    result = _speak(tmp_path, "One small sentence.")
    with wave.open(str(result.wav)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SAMPLE_RATE)
        assert w.getnframes() == result.samples
    assert result.samples % 882 == 0
    assert result.duration_ms == result.frames * 40
    assert result.words[-1].offset_ms + result.words[-1].duration_ms <= result.duration_ms


def test_words_and_sentences_follow_the_input(tmp_path: Path) -> None:
    text = "Revenue grew 12% in 2024. Costs fell! Did margins improve?"
    result = _speak(tmp_path, text)
    assert [w.text for w in result.words] == [
        "Revenue",
        "grew",
        "12%",
        "in",
        "2024",
        "Costs",
        "fell",
        "Did",
        "margins",
        "improve",
    ]
    assert [s.text for s in result.sentences] == [
        "Revenue grew 12% in 2024.",
        "Costs fell!",
        "Did margins improve?",
    ]
    starts = [w.offset_ms for w in result.words]
    assert starts == sorted(starts)
    for s, first in zip(result.sentences, (0, 5, 7), strict=True):
        assert s.offset_ms == result.words[first].offset_ms
    ends = [s.offset_ms + s.duration_ms for s in result.sentences]
    assert all(e <= result.duration_ms for e in ends)


def test_ssml_escapes_breaks_unknown_elements_and_bookmarks(tmp_path: Path) -> None:
    plain = _ssml('<voice name="en-US-AvaMultilingualNeural">Tom &amp; Jerry ran.</voice>')
    paused = _ssml(
        '<voice name="en-US-AvaMultilingualNeural"><mstts:express-as style="cheerful">Tom &amp; '
        '<break time="500ms"/>Jerry <bookmark mark="gesture.wave-left"/><foo bar="1">ran</foo>.'
        '</mstts:express-as><mstts:silence type="Tailing" value="10ms"/></voice>'
    )
    pieces = parse_input(paused, "SSML")
    assert Pause(500) in pieces
    assert Bookmark("gesture.wave-left") in pieces
    assert all(p.voice == "en-US-AvaMultilingualNeural" for p in pieces if isinstance(p, Say))
    a = _speak(tmp_path, plain, "SSML")
    b = _speak(tmp_path, paused, "SSML")
    assert [w.text for w in a.words] == ["Tom", "Jerry", "ran"]
    assert [w.text for w in b.words] == ["Tom", "Jerry", "ran"]
    assert b.duration_ms - a.duration_ms >= 400
    assert [m.name for m in b.marks] == ["gesture.wave-left"]
    jerry = b.words[1]
    assert jerry.offset_ms <= b.marks[0].offset_ms
    assert a.characters == len("Tom & Jerry ran.")


def test_ssml_prosody_changes_rate_and_volume(tmp_path: Path) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    slow = _speak(tmp_path, _ssml(f'<prosody rate="-40%">{text}</prosody>'), "SSML")
    fast = _speak(tmp_path, _ssml(f'<prosody rate="fast">{text}</prosody>'), "SSML")
    assert fast.duration_ms < slow.duration_ms * 0.8
    # synthesisConfig prosody applies to plain text the same way.
    plain_fast = _speak(tmp_path, text, rate="+55%")
    assert plain_fast.duration_ms < slow.duration_ms * 0.8


def test_prosody_values() -> None:
    assert parse_rate("+50%") == pytest.approx(1.5)
    assert parse_rate("1.2") == pytest.approx(1.2)
    assert parse_rate("x-slow") == pytest.approx(0.5)
    assert parse_rate("nonsense") == 1.0  # invalid values are ignored, as Azure does
    assert parse_pitch("+12st") == pytest.approx(2.0)
    assert parse_pitch("-10%") == pytest.approx(0.9)
    assert parse_pitch("high") > 1.0
    assert parse_volume("50") == 50
    assert parse_volume("-50%") == 50
    assert parse_volume("+10") == 110
    assert parse_volume("silent") == 0
    assert parse_volume("loud-ish") == 100


def test_voice_locale_maps_to_espeak() -> None:
    assert espeak_voice_for("de-DE-KatjaNeural", "de-DE")[:2] == ["de-de+f3", "de-de"]
    assert "de" in espeak_voice_for("de-DE-ConradNeural", "de-DE")
    assert espeak_voice_for(None, "zh-CN")[0] == "cmn"
    assert espeak_voice_for("en-US-AvaMultilingualNeural", "en-US")[0] == "en-us+f3"
    assert espeak_voice_for("MyCustomVoice", "xx-YY")[-1] == "en-us"


def test_other_locales_speak(tmp_path: Path) -> None:
    de = _speak(
        tmp_path,
        _ssml('<voice name="de-DE-KatjaNeural">Guten Morgen, wie geht es?</voice>', "de-DE"),
        "SSML",
    )
    assert [w.text for w in de.words] == ["Guten", "Morgen", "wie", "geht", "es"]
    fr = _speak(tmp_path, "Bonjour à tous.", voice="fr-FR-DeniseNeural")
    assert [w.text for w in fr.words] == ["Bonjour", "à", "tous"]


@pytest.mark.parametrize(
    "bad",
    [
        '<!DOCTYPE speak [<!ENTITY x "boom">]><speak>&x;</speak>',
        "<speak>unclosed",
        "<notspeak>hello</notspeak>",
        "<speak><mstts:express-as>no namespace</mstts:express-as></speak>",
    ],
)
def test_bad_ssml_is_refused(bad: str) -> None:
    with pytest.raises(RequestValidationError, match="SSML"):
        parse_input(bad, "SSML")


def test_unknown_input_kind_is_refused() -> None:
    with pytest.raises(RequestValidationError, match="inputKind"):
        parse_input("hi", "Markdown")


def test_nothing_to_say_is_refused(renderer: AvatarRenderer, tmp_path: Path) -> None:
    spec = RenderSpec(content=_ssml("<voice name='en-US-AvaNeural'>   </voice>"), input_kind="SSML")
    with pytest.raises(RequestValidationError, match="no text"):
        renderer.render(spec, tmp_path, "0001")


def test_concurrent_synthesis_is_serialised_and_identical(tmp_path: Path) -> None:
    text = "Concurrency must not mix up two voices."
    ref = _speak(tmp_path, text)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results.append(synthesize(parse_input(text, "PlainText"), tmp_path / f"t{i}.wav"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 4
    for r in results:
        # eSpeak's event times jitter by a few milliseconds between runs; words and length may not.
        assert r.samples == ref.samples
        assert [w.text for w in r.words] == [w.text for w in ref.words]
        for got, want in zip(r.words, ref.words, strict=True):
            assert abs(got.offset_ms - want.offset_ms) <= 40
        assert len({r.wav for r in results}) == 4


def test_ssml_render_with_break_is_longer_and_boundaries_match(
    renderer: AvatarRenderer, tmp_path: Path, audio_stats: Callable[[Path], Any]
) -> None:
    base = "Tom &amp; Jerry ran home."
    specs = {
        "plain": _ssml(f'<voice name="en-US-AvaMultilingualNeural">{base}</voice>'),
        "break": _ssml(
            '<voice name="en-US-AvaMultilingualNeural">Tom &amp; Jerry <break time="500ms"/>'
            "<unknown>ran</unknown> home.</voice>"
        ),
    }
    outs = {}
    for name, content in specs.items():
        spec = RenderSpec(
            content=content,
            input_kind="SSML",
            video_codec="h264",
            word_boundary=True,
            subtitle_type="none",
        )
        outs[name] = renderer.render(spec, tmp_path / name, "0001")
    assert outs["break"].duration_ms - outs["plain"].duration_ms >= 400
    for name, out in outs.items():
        info = probe(out.video, exact=True)
        assert abs(info.duration_s - out.duration_ms / 1000) <= 0.1
        assert audio_stats(out.video).mean_db > -50
        words = json.loads((tmp_path / name / "0001.word.json").read_text(encoding="utf-8"))
        assert [w["Text"] for w in words] == ["Tom", "Jerry", "ran", "home"]
        assert all(w["AudioOffset"] + w["Duration"] <= out.duration_ms for w in words)
