"""SSML rendering: what Azure accepts, and text can never become markup."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from avatarpipe.errors import ScriptError
from avatarpipe.scripts import (
    Script,
    load_script,
    plain_text,
    render_scene_ssml,
    render_script_ssml,
    script_hash,
)

S = "{http://www.w3.org/2001/10/synthesis}"
M = "{https://www.w3.org/2001/mstts}"


def one_scene(text: str, **scene: Any) -> Script:
    return Script.model_validate(
        {
            "title": "Injection",
            "avatar": {"character": "lisa", "style": "casual-sitting"},
            "voice": {"name": "en-US-AvaMultilingualNeural"},
            "scenes": [{"text": text, **scene}],
        }
    )


INJECTIONS = [
    '</voice><voice name="x">',
    '</voice><voice name="x">Evil</voice><voice name="en-US-AvaMultilingualNeural">',
    "Tom & Jerry",
    "1 < 2 and 3 > 2",
    "\"double\" and 'single' quotes",
    "]]> end of CDATA",
    "<![CDATA[<voice name='x'>]]>",
    "&amp; already escaped &lt;",
    "<!-- comment --> <?pi x?>",
    '<!DOCTYPE speak [<!ENTITY e "boom">]>&e;',
    "{{ 7 * 7 }} {% if true %}jinja{% endif %}",
    "</speak><speak>",
    "Ünïcödé ✓ 日本語",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_text_renders_literally(text: str) -> None:
    document = render_scene_ssml(one_scene(text), 0)
    root = ET.fromstring(document)
    voices = root.findall(f".//{S}voice")
    assert len(voices) == 1
    assert voices[0].get("name") == "en-US-AvaMultilingualNeural"
    assert len(voices[0]) == 0  # no child elements: the text stayed text
    assert voices[0].text == text
    assert plain_text(one_scene(text).scenes[0]) == " ".join(text.split())


def test_document_is_what_azure_accepts() -> None:
    script = Script.model_validate(
        {
            "title": "Shape",
            "avatar": {"character": "contoso-ceo", "customized": True},
            "voice": {
                "name": "ContosoCeoNeural",
                "deployment_id": "9f50c644-2121-40e9-9ea7-544e48bfe3cb",
                "style": "cheerful",
                "rate": "+10%",
                "pitch": "-2st",
                "locale": "en-GB",
            },
            "scenes": [
                {"text": "Hi [gesture:wave-left-1] there.", "gestures": ["show-front-1"]},
                {"text": "First paragraph.\n\nSecond [pause:1.5s] one.", "pause_after_ms": 250},
            ],
        }
    )
    first, second = render_script_ssml(script)
    assert first.startswith(
        '<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" '
        'xmlns:mstts="https://www.w3.org/2001/mstts" xml:lang="en-GB">'
    )
    root = ET.fromstring(first)
    assert root.tag == f"{S}speak"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en-GB"
    voice = root.find(f"{S}voice")
    assert voice is not None and voice.get("name") == "ContosoCeoNeural"
    express = voice.find(f"{M}express-as")
    assert express is not None and express.get("style") == "cheerful"
    prosody = express.find(f"{S}prosody")
    assert prosody is not None
    assert (prosody.get("rate"), prosody.get("pitch"), prosody.get("volume")) == (
        "+10%",
        "-2st",
        None,
    )
    kids = [(child.tag, child.get("mark") or child.get("time"), child.tail) for child in prosody]
    assert kids == [
        (f"{S}bookmark", "gesture.show-front-1", "Hi "),
        (f"{S}bookmark", "gesture.wave-left-1", " there."),
        (f"{S}break", "600ms", None),  # the gap before the next scene
    ]
    assert "<bookmark mark='gesture.wave-left-1'/>" in first
    prosody2 = ET.fromstring(second).find(f".//{S}prosody")
    assert prosody2 is not None
    breaks = [b.get("time") for b in prosody2.iter(f"{S}break")]
    assert breaks == ["400ms", "1500ms", "250ms"]  # paragraph, marker, pause_after_ms
    assert plain_text(script.scenes[1]) == "First paragraph.\r\nSecond one."


def test_last_scene_has_no_trailing_pause_and_no_prosody_when_unset() -> None:
    document = render_scene_ssml(one_scene("Only scene."), 0)
    assert "<break" not in document and "<prosody" not in document and "express-as" not in document


def test_raw_ssml_fragment_goes_in_as_is() -> None:
    fragment = (
        'Say <say-as interpret-as="characters">SQL</say-as> <break time="300ms"/>'
        '<mstts:silence type="Sentenceboundary" value="200ms"/>'
        '<emphasis level="strong">now</emphasis> &amp; <bookmark mark="gesture.wave-left-1"/>'
    )
    script = Script.model_validate(
        {
            "title": "Raw",
            "avatar": {"character": "lisa", "style": "casual-sitting"},
            "voice": {"name": "en-US-AvaMultilingualNeural"},
            "scenes": [{"ssml": fragment}],
        }
    )
    document = render_scene_ssml(script, 0)
    assert fragment in document
    voice = ET.fromstring(document).find(f"{S}voice")
    assert voice is not None
    assert [c.tag for c in voice] == [
        f"{S}say-as",
        f"{S}break",
        f"{M}silence",
        f"{S}emphasis",
        f"{S}bookmark",
    ]
    assert plain_text(script.scenes[0]) == "Say SQL now &"


@pytest.mark.parametrize(
    ("fragment", "reason"),
    [
        ('</voice><voice name="x">Evil', "not well-formed"),
        ('Hi</voice></speak><speak><voice name="x">Evil', "not well-formed"),
        ("</avatarpipe-fragment><avatarpipe-fragment>x", "not well-formed"),
        ('<voice name="x">Evil</voice>', "may not contain <voice>"),
        ("<speak>Evil</speak>", "may not contain <speak>"),
        ('<!DOCTYPE a [<!ENTITY b SYSTEM "file:///etc/passwd">]>&b;', "DOCTYPE"),
        ("<?xml version='1.0'?>Hi", "processing instructions"),
        ("Hi &nbsp; there", "not well-formed"),
        ("<script>alert(1)</script>", "<script> is not allowed"),
        ('<x:foo xmlns:x="urn:x">Hi</x:foo>', "<foo> is not allowed"),
    ],
)
def test_raw_ssml_that_could_break_out_is_rejected(fragment: str, reason: str) -> None:
    with pytest.raises(Exception) as info:  # pydantic ValidationError from the model
        Script.model_validate(
            {
                "title": "Raw",
                "avatar": {"character": "lisa", "style": "casual-sitting"},
                "voice": {"name": "en-US-AvaMultilingualNeural"},
                "scenes": [{"ssml": fragment}],
            }
        )
    assert reason in str(info.value)


def _script_with_template(tmp_path: Path, body: str, text: str = "Hello.") -> Path:
    (tmp_path / "ssml").mkdir(exist_ok=True)
    (tmp_path / "ssml" / "custom.xml.j2").write_text(body, encoding="utf-8")
    path = tmp_path / "custom.yaml"
    path.write_text(
        "title: Custom\n"
        "avatar: {character: lisa, style: casual-sitting}\n"
        "voice: {name: en-US-AvaMultilingualNeural}\n"
        "template: ssml/custom.xml.j2\n"
        f"scenes:\n  - text: Fine.\n  - text: {text!r}\n",
        encoding="utf-8",
    )
    return path


SPEAK = '<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="{{ locale }}">'


def test_custom_template_next_to_the_script(tmp_path: Path) -> None:
    path = _script_with_template(
        tmp_path, SPEAK + '<voice name="{{ voice.name }}"><p>{{ scene.text }}</p></voice></speak>'
    )
    script = load_script(path)
    assert "<p>Fine.</p>" in render_scene_ssml(script, 0)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (SPEAK + "<voice name='a'>{{ scene.text }}</speak>", "not well-formed"),
        (
            SPEAK + "<voice name='a'>{{ scene.text }}</voice><voice name='b'>x</voice></speak>",
            "exactly one <voice>",
        ),
        (SPEAK + "<voice name='a'>{{ no_such_variable }}</voice></speak>", "UndefinedError"),
        (SPEAK + "<voice name='a'>{{ scene.__class__.__mro__ }}</voice></speak>", "failed"),
        (
            SPEAK + "<voice name='a'>{{ scene.text * 30 }}</voice></speak>",
            "bytes; the limit per input is 500000",
        ),
        ("{% if %}", "TemplateSyntaxError"),
    ],
    ids=["malformed", "two-voices", "undefined", "sandbox", "too-big", "syntax"],
)
def test_bad_template_output_is_caught_and_names_the_scene(
    tmp_path: Path, body: str, reason: str
) -> None:
    path = _script_with_template(tmp_path, body, text="x" * 19_000)
    with pytest.raises(ScriptError) as info:
        load_script(path)
    assert info.value.field in ("scenes[0]", "scenes[1]")
    assert str(info.value).startswith(f"{path.resolve()}: scenes[")
    assert reason in str(info.value)


def test_script_hash_tracks_content_not_location(
    tmp_path: Path, write_script: Callable[..., Path], base: dict[str, Any]
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        (d / "assets").mkdir(parents=True)
        (d / "assets" / "bed.mp3").write_bytes(b"music v1")
    base["post"] = {"music": "assets/bed.mp3"}
    import yaml

    for d in (one, two):
        (d / "s.yaml").write_text(yaml.safe_dump(base), encoding="utf-8")
    h1 = script_hash(load_script(one / "s.yaml"))
    assert len(h1) == 64 and h1 == script_hash(load_script(one / "s.yaml"))
    assert h1 == script_hash(load_script(two / "s.yaml"))  # moved checkout: same hash
    (two / "assets" / "bed.mp3").write_bytes(b"music v2")
    assert h1 != script_hash(load_script(two / "s.yaml"))  # asset content changed
    base["scenes"][0]["text"] = "Scene one, edited."
    (one / "s.yaml").write_text(yaml.safe_dump(base), encoding="utf-8")
    assert h1 != script_hash(load_script(one / "s.yaml"))


def test_script_hash_tracks_the_template(tmp_path: Path) -> None:
    body = SPEAK + '<voice name="{{ voice.name }}">{{ scene.text }}</voice></speak>'
    path = _script_with_template(tmp_path, body)
    before = script_hash(load_script(path))
    (tmp_path / "ssml" / "custom.xml.j2").write_text(body + "\n", encoding="utf-8")
    assert script_hash(load_script(path)) != before


def test_examples_render_outside_the_repo_when_templates_dir_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from avatarpipe.scripts.templates import templates_root

    copy = tmp_path / "templates"
    shutil.copytree(templates_root(), copy)
    monkeypatch.setenv("AVATARPIPE_TEMPLATES_DIR", str(copy))
    assert templates_root() == copy.resolve()
    script = one_scene("Hi.")
    assert "Hi." in render_scene_ssml(script, 0)
    monkeypatch.setenv("AVATARPIPE_TEMPLATES_DIR", str(tmp_path / "missing"))
    from avatarpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="AVATARPIPE_TEMPLATES_DIR"):
        render_scene_ssml(script, 0)
