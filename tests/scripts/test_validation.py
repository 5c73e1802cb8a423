"""Every way a script can be wrong gives one line naming the file, the field and the reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from avatarpipe.cli import app
from avatarpipe.errors import InvalidInputError, ScriptError
from avatarpipe.scripts import load_script
from avatarpipe.scripts.loader import MAX_PROBLEMS_SHOWN
from avatarpipe.scripts.templates import templates_root

EXAMPLES = templates_root() / "scripts"

Mutation = Callable[[dict[str, Any]], None]


def put(path: str, value: Any) -> Mutation:
    """Set a dotted path (``scenes.1.text``) in the script dict."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def drop(path: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        for m in mutations:
            m(data)

    return mutate


UUID = "9f50c644-2121-40e9-9ea7-544e48bfe3cb"

# (id, mutation, field path the error must name, fragment of the reason)
BAD: list[tuple[str, Mutation, str, str]] = [
    ("title-missing", drop("title"), "title", "required field is missing"),
    ("title-not-string", put("title", ["a", "b"]), "title", "valid string"),
    ("title-empty", put("title", ""), "title", "at least 1 character"),
    ("top-unknown-key", put("scnes", []), "scnes", "did you mean 'scenes'?"),
    ("avatar-missing", drop("avatar"), "avatar", "required"),
    ("avatar-not-mapping", put("avatar", "lisa"), "avatar", "expected a mapping"),
    ("avatar-standard-no-style", drop("avatar.style"), "avatar.style", "needs a style"),
    (
        "avatar-custom-with-style",
        put("avatar.customized", True),
        "avatar.style",
        "takes no style",
    ),
    ("avatar-name-space", put("avatar.character", "lisa smith"), "avatar.character", "not a valid"),
    (
        "avatar-name-traversal",
        put("avatar.character", "../lisa"),
        "avatar.character",
        "not a valid",
    ),
    ("avatar-unknown-key", put("avatar.stlye", "x"), "avatar.stlye", "did you mean 'style'?"),
    (
        "avatar-customized-not-bool",
        put("avatar.customized", "maybe"),
        "avatar.customized",
        "boolean",
    ),
    ("voice-name-missing", drop("voice.name"), "voice.name", "required"),
    ("voice-name-bad", put("voice.name", "Ava Neural!"), "voice.name", "not a valid voice name"),
    ("voice-deployment-not-uuid", put("voice.deployment_id", "abc"), "voice.deployment_id", "UUID"),
    ("voice-rate-bad", put("voice.rate", "fastest"), "voice.rate", "not a valid rate"),
    ("voice-pitch-bad", put("voice.pitch", "+2 semitones"), "voice.pitch", "not a valid pitch"),
    ("voice-volume-bad", put("voice.volume", "LOUDER"), "voice.volume", "not a valid volume"),
    ("voice-locale-bad", put("voice.locale", "english"), "voice.locale", "not a valid locale"),
    ("voice-unknown-key", put("voice.deploymentid", UUID), "voice.deploymentid", "deployment_id"),
    ("video-format-enum", put("video.format", "mov"), "video.format", "'mp4' or 'webm'"),
    (
        "video-codec-enum",
        put("video.codec", "prores"),
        "video.codec",
        "'h264', 'hevc', 'vp9' or 'av1'",
    ),
    ("video-codec-format-pair", put("video.codec", "vp9"), "video.codec", "does not go in mp4"),
    (
        "video-webm-h264",
        both(put("video.format", "webm"), put("video.codec", "h264")),
        "video.codec",
        "vp9, av1",
    ),
    ("video-transparent-mp4", put("video.background", "transparent"), "video.background", "webm"),
    (
        "video-alpha-needs-vp9",
        both(
            put("video.format", "webm"),
            put("video.codec", "av1"),
            put("video.background", "#00FF0080"),
        ),
        "video.background",
        "vp9",
    ),
    ("video-colour-short", put("video.background", "#FFF"), "video.background", "#RRGGBBAA"),
    (
        "video-colour-and-image",
        both(
            put("video.background", "#000000FF"),
            put("video.background_image", "https://x.example/a.png"),
        ),
        "video.background_image",
        "not both",
    ),
    (
        "video-image-http",
        put("video.background_image", "http://x.example/a.png"),
        "video.background_image",
        "https",
    ),
    (
        "video-bitrate-low",
        put("video.bitrate_kbps", -5),
        "video.bitrate_kbps",
        "greater than or equal to 100",
    ),
    (
        "video-bitrate-text",
        put("video.bitrate_kbps", "fast"),
        "video.bitrate_kbps",
        "valid integer",
    ),
    (
        "video-subtitles-enum",
        put("video.subtitles", "burned"),
        "video.subtitles",
        "'soft_embedded'",
    ),
    (
        "video-crop-inverted",
        put("video.crop", {"top_left": {"x": 500, "y": 500}, "bottom_right": {"x": 100, "y": 900}}),
        "video.crop.bottom_right",
        "right of and below",
    ),
    (
        "video-crop-missing-corner",
        put("video.crop", {"top_left": {"x": 0, "y": 0}}),
        "video.crop.bottom_right",
        "required",
    ),
    ("scenes-missing", drop("scenes"), "scenes", "required"),
    ("scenes-empty", put("scenes", []), "scenes", "at least 1 item"),
    ("scenes-not-list", put("scenes", "hello"), "scenes", "expected a list"),
    ("scenes-too-many", put("scenes", [{"text": "x"}] * 1001), "scenes", "at most 1000"),
    ("scene-not-mapping", put("scenes.1", "just text"), "scenes[1]", "expected a mapping"),
    ("scene-text-and-ssml", put("scenes.1.ssml", "Hi"), "scenes[1].ssml", "not both"),
    ("scene-no-body", put("scenes.1", {"title": "Empty"}), "scenes[1].text", "neither is set"),
    ("scene-text-blank", put("scenes.1.text", "   "), "scenes[1].text", "text is empty"),
    (
        "scene-text-only-marker",
        put("scenes.1.text", "[gesture:wave-left-1]"),
        "scenes[1].text",
        "text is empty",
    ),
    (
        "scene-text-only-invisible",
        put("scenes.1.text", "\u200b\u200c\u200d\u200e\u200f\u2060\u2064\ufeff\u00ad \u3000\u034f"),
        "scenes[1].text",
        "text is empty (or only invisible characters)",
    ),
    (
        "scene-text-invisible-around-markers",
        put("scenes.1.text", "\u200b[pause:300ms]\u2063\n\n\u2800[gesture:wave-left-1]\u115f"),
        "scenes[1].text",
        "text is empty",
    ),
    (
        "scene-ssml-only-invisible",
        put("scenes.1", {"ssml": "<s>\u200b\ufeff</s>"}),
        "scenes[1].ssml",
        "no words",
    ),
    ("scene-text-too-long", put("scenes.1.text", "a" * 20_001), "scenes[1].text", "at most 20000"),
    ("scene-text-not-string", put("scenes.1.text", {"a": 1}), "scenes[1].text", "valid string"),
    (
        "scene-gesture-marker-bad",
        put("scenes.1.text", "Hi [gesture:Wave Left]"),
        "scenes[1].text",
        "bad gesture marker",
    ),
    (
        "scene-gesture-marker-unclosed",
        put("scenes.1.text", "Hi [gesture:wave"),
        "scenes[1].text",
        "unclosed marker",
    ),
    (
        "scene-pause-marker-bad",
        put("scenes.1.text", "Hi [pause:soon] there"),
        "scenes[1].text",
        "bad pause marker",
    ),
    (
        "scene-pause-marker-long",
        put("scenes.1.text", "Hi [pause:30s] there"),
        "scenes[1].text",
        "longer than 20000",
    ),
    (
        "scene-control-char",
        put("scenes.1.text", "Hi \x07 there"),
        "scenes[1].text",
        "control character U+0007",
    ),
    (
        "scene-gesture-name-bad",
        put("scenes.1.gestures", ["ok", "Wave Left"]),
        "scenes[1].gestures[1]",
        "not a gesture name",
    ),
    (
        "scene-gestures-not-list",
        put("scenes.1.gestures", "wave"),
        "scenes[1].gestures",
        "expected a list",
    ),
    (
        "scene-pause-too-long",
        put("scenes.1.pause_after_ms", 25_000),
        "scenes[1].pause_after_ms",
        "less than or equal to 20000",
    ),
    ("scene-unknown-key", put("scenes.1.txt", "x"), "scenes[1].txt", "did you mean 'text'?"),
    (
        "scene-ssml-voice",
        both(drop("scenes.1.text"), put("scenes.1.ssml", 'Hi</voice><voice name="x">there')),
        "scenes[1].ssml",
        "not well-formed",
    ),
    (
        "scene-ssml-nested-voice",
        both(drop("scenes.1.text"), put("scenes.1.ssml", '<voice name="x">Hi</voice>')),
        "scenes[1].ssml",
        "may not contain <voice>",
    ),
    (
        "scene-ssml-malformed",
        both(drop("scenes.1.text"), put("scenes.1.ssml", "Hi <break time='1s'> there")),
        "scenes[1].ssml",
        "not well-formed",
    ),
    (
        "scene-ssml-doctype",
        both(drop("scenes.1.text"), put("scenes.1.ssml", '<!DOCTYPE x [<!ENTITY a "b">]>&a;')),
        "scenes[1].ssml",
        "DOCTYPE",
    ),
    (
        "scene-ssml-element",
        both(drop("scenes.1.text"), put("scenes.1.ssml", 'Hi <audio src="https://x/a.wav"/>')),
        "scenes[1].ssml",
        "<audio> is not allowed",
    ),
    (
        "scene-ssml-silent",
        both(drop("scenes.1.text"), put("scenes.1.ssml", '<break time="1s"/>')),
        "scenes[1].ssml",
        "no words",
    ),
    (
        "scene-background-transparent",
        put("scenes.1.background", "transparent"),
        "scenes[1].background",
        "webm",
    ),
    (
        "scene-background-bad",
        put("scenes.1.background", "red"),
        "scenes[1].background",
        "#RRGGBBAA",
    ),
    ("slug-traversal", put("slug", "../etc"), "slug", "not a slug"),
    ("slug-separator", put("slug", "a/b"), "slug", "not a slug"),
    ("slug-upper", put("slug", "My-Video"), "slug", "not a slug"),
    ("template-traversal", put("template", "../../etc/passwd.xml.j2"), "template", "'..'"),
    ("template-absolute", put("template", "/etc/x.xml.j2"), "template", "absolute"),
    ("template-missing", put("template", "ssml/nope.xml.j2"), "template", "not found"),
    ("template-wrong-kind", put("template", "ssml/presenter.txt"), "template", ".xml.j2"),
    (
        "post-asset-missing",
        put("post", {"intro": "assets/intro.mp4"}),
        "post.intro",
        "does not exist",
    ),
    ("post-asset-traversal", put("post", {"music": "../secret.mp3"}), "post.music", "'..'"),
    ("post-asset-absolute", put("post", {"logo": "/etc/passwd"}), "post.logo", "absolute"),
    ("post-asset-backslash", put("post", {"outro": "..\\x.mp4"}), "post.outro", "'\\'"),
    ("post-asset-not-string", put("post", {"intro": 5}), "post.intro", "file path"),
    (
        "post-variant-enum",
        put("post", {"variants": ["4:3"]}),
        "post.variants[0]",
        "'16:9', '9:16' or '1:1'",
    ),
    ("post-variant-repeat", put("post", {"variants": ["16:9", "16:9"]}), "post.variants", "repeat"),
    ("post-variants-empty", put("post", {"variants": []}), "post.variants", "at least 1 item"),
    ("post-preset-traversal", put("post", {"preset": "../x"}), "post.preset", "not a preset name"),
    (
        "post-override-nested",
        put("post", {"overrides": {"crf": [1, 2]}}),
        "post.overrides.crf",
        "single value",
    ),
    (
        "post-unknown-key",
        put("post", {"varaints": ["16:9"]}),
        "post.varaints",
        "did you mean 'variants'?",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"), [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_bad_script_names_file_field_and_reason(
    base: dict[str, Any],
    write_script: Callable[..., Path],
    mutate: Mutation,
    field: str,
    fragment: str,
) -> None:
    mutate(base)
    path = write_script(base)
    with pytest.raises(ScriptError) as info:
        load_script(path)
    err = info.value
    message = str(err)
    assert err.field == field, message
    assert err.file == str(path)
    assert message.startswith(f"{path}: {field}: "), message
    assert fragment in message, message
    assert "\n" not in message
    assert isinstance(err, InvalidInputError) and err.exit_code == 2


def test_there_are_at_least_25_distinct_bad_scripts() -> None:
    assert len({c[0] for c in BAD}) == len(BAD) >= 25
    assert len({c[2] for c in BAD}) >= 25  # distinct field paths too


def test_did_you_mean_lists_allowed_keys_when_nothing_is_close(
    base: dict[str, Any], write_script: Callable[..., Path]
) -> None:
    base["zzzz"] = 1
    with pytest.raises(ScriptError) as info:
        load_script(write_script(base))
    assert "unknown key 'zzzz'; allowed keys: avatar, post, scenes" in str(info.value)


def test_line_numbers_and_further_errors_as_notes(write_script: Callable[..., Path]) -> None:
    text = """\
title: Lines
avatar: {character: lisa, style: casual-sitting}
voice: {name: en-US-AvaMultilingualNeural}
scenes:
  - text: One.
  - title: no body
video: {format: avi}
"""
    with pytest.raises(ScriptError) as info:
        load_script(write_script(text))
    message = str(info.value)
    assert "video.format" in message and "(line 7)" in message and "(and 1 more)" in message
    notes = info.value.__notes__
    assert len(notes) == 1 and "scenes[1].text" in notes[0] and "(line 6)" in notes[0]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("title: [unclosed\n", "malformed YAML at line 2, column 1"),
        ("title: a\n  bad: indent\n", "malformed YAML at line 2, column 6"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("just a string\n", "top level must be a mapping"),
        ("", "file is empty"),
        ("# only a comment\n", "file is empty"),
        ("title: a\ntitle: b\n", "duplicate key 'title' (line 2; first at line 1)"),
    ],
    ids=["unclosed", "indent", "list", "scalar", "empty", "comment-only", "duplicate-key"],
)
def test_file_level_errors(write_script: Callable[..., Path], text: str, fragment: str) -> None:
    path = write_script(text)
    with pytest.raises(ScriptError) as info:
        load_script(path)
    assert str(info.value).startswith(f"{path}: ")
    assert fragment in str(info.value)


def test_missing_file_directory_and_binary(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="nope.yaml: file not found"):
        load_script(tmp_path / "nope.yaml")
    with pytest.raises(ScriptError, match="is a directory"):
        load_script(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"title: \xff\xfe\n")
    with pytest.raises(ScriptError, match="not UTF-8"):
        load_script(binary)


def test_unreadable_file(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = tmp_path / "locked.yaml"
    path.write_text("title: x\n")
    path.chmod(0)
    try:
        with pytest.raises(ScriptError, match="not readable"):
            load_script(path)
    finally:
        path.chmod(0o600)


def test_yaml_alias_bomb_is_refused(write_script: Callable[..., Path]) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    with pytest.raises(ScriptError, match="too large"):
        load_script(write_script("\n".join(lines) + "\n"))


def test_slug_is_derived_and_safe(base: dict[str, Any], write_script: Callable[..., Path]) -> None:
    base["title"] = "  Q3 Update: Revenue / Growth ../../etc  "
    script = load_script(write_script(base))
    assert script.slug == "q3-update-revenue-growth-etc"
    base["title"] = "!!!"
    assert load_script(write_script(base)).slug == "script"


def test_assets_resolve_relative_to_the_script(
    base: dict[str, Any], write_script: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "intro.mp4").write_bytes(b"not really a video")
    base["post"] = {"intro": "assets/intro.mp4", "variants": ["9:16", "1:1"]}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = Path.cwd()
    os_chdir = __import__("os").chdir
    os_chdir(elsewhere)
    try:
        script = load_script(write_script(base))
    finally:
        os_chdir(cwd)
    assert script.post.intro == (tmp_path / "assets" / "intro.mp4").resolve()
    assert script.post.variants == ["9:16", "1:1"]


def test_defaults_and_valid_combinations(
    base: dict[str, Any], write_script: Callable[..., Path]
) -> None:
    script = load_script(write_script(base))
    assert (script.video.format, script.video.codec) == ("mp4", "h264")
    assert script.video.background == "#FFFFFFFF" and script.video.bitrate_kbps == 2000
    assert script.post.preset == "web-1080p" and script.post.variants == ["16:9"]
    base["video"] = {"format": "webm", "codec": "vp9", "background": "transparent"}
    base["voice"] = {
        "name": "ContosoCeoNeural",
        "deployment_id": "9F50C644-2121-40E9-9EA7-544E48BFE3CB",
        "rate": 1.2,
        "pitch": "+2st",
        "volume": 80,
        "locale": "de-DE",
    }
    base["avatar"] = {"character": "contoso-ceo", "customized": True}
    base["scenes"][1]["background_image"] = "https://cdn.example/bg.png"
    script = load_script(write_script(base))
    assert script.voice.rate == "1.2" and script.voice.volume == "80"
    assert str(script.voice.deployment_id) == "9f50c644-2121-40e9-9ea7-544e48bfe3cb"
    assert script.voice.effective_locale == "de-DE"
    assert script.scene_video(0).background == "transparent"
    one = script.scene_video(1)
    assert one.background is None and one.background_image == "https://cdn.example/bg.png"


# --- every problem shown; a bulk template refused without its CSV ----------------------------


def _error_lines(output: str) -> list[str]:
    assert "Traceback" not in output
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_validate_lists_every_problem_with_its_line(write_script: Callable[..., Path]) -> None:
    text = """\
title: Lines
avatar: {character: lisa, style: casual-sitting}
voice: {name: en-US-AvaMultilingualNeural}
scenes:
  - text: One.
  - title: no body
  - text: Three.
    pause_after_ms: -5
video: {format: avi}
"""
    result = CliRunner().invoke(app, ["validate", str(write_script(text))])
    assert result.exit_code == 2, result.output
    lines = _error_lines(result.output)
    assert len(lines) == 3, result.output  # one line per problem, each naming field and line
    by_field = {field: line for line in lines for field in FIELDS if f": {field}: " in line}
    assert set(by_field) == set(FIELDS), result.output
    for field, line in FIELDS.items():
        assert f"(line {line})" in by_field[field], by_field[field]


FIELDS = {"video.format": 9, "scenes[1].text": 6, "scenes[2].pause_after_ms": 8}


def test_at_most_twenty_problems_are_listed_and_the_rest_counted(
    base: dict[str, Any], write_script: Callable[..., Path]
) -> None:
    base["scenes"] = [{"text": "ok", "pause_after_ms": -1} for _ in range(25)]
    with pytest.raises(ScriptError) as info:
        load_script(write_script(base))
    assert "(and 24 more)" in str(info.value)
    notes = info.value.__notes__
    assert len(notes) == MAX_PROBLEMS_SHOWN == 20
    assert all(f"scenes[{i}].pause_after_ms" in notes[i - 1] for i in range(1, 20))
    assert notes[-1].startswith("... and 5 more problem(s) not shown")


def test_a_bulk_template_is_refused_without_its_csv(tmp_path: Path) -> None:
    template = EXAMPLES / "greeting-template.yaml"
    out = tmp_path / "out"
    for command in (
        ["validate", str(template)],
        ["run", str(template), "--out", str(out)],
    ):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "ok:" not in result.output
        lines = _error_lines(result.output)
        assert len(lines) == 2, result.output  # the title and the scene text
        assert "title: placeholder {{ name }} is only filled from a CSV row" in lines[0]
        assert "(line 4)" in lines[0] and "--csv" in lines[0]
        assert "scenes[0].text: placeholders {{ company }}, {{ name }}" in lines[1]
        assert "(line 11)" in lines[1]
    assert not out.exists(), "nothing is written for a template without its CSV"


def test_literal_braces_in_a_plain_script_are_not_placeholders(
    base: dict[str, Any], write_script: Callable[..., Path]
) -> None:
    base["scenes"][0]["text"] = "Type {{ and press enter."
    assert load_script(write_script(base)).scenes[0].text == "Type {{ and press enter."


def test_bulk_lists_the_problems_of_every_row(tmp_path: Path) -> None:
    template = tmp_path / "t.yaml"
    template.write_text(
        "title: 'Hi {{ name }}'\nslug: hi\navatar: {character: lisa, style: casual-sitting}\n"
        "voice: {name: en-US-AvaMultilingualNeural}\n"
        "scenes:\n  - text: 'Hello {{ name }}'\n    pause_after_ms: '{{ pause }}'\n",
        encoding="utf-8",
    )
    rows = tmp_path / "rows.csv"
    rows.write_text("name,pause\nAda,-1\nGrace,10\nKat,-2\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(template), "--csv", str(rows)])
    assert result.exit_code == 2, result.output
    lines = _error_lines(result.output)
    assert len(lines) == 2, result.output
    assert "row 1, line 2" in lines[0] and "row 3, line 4" in lines[1]
    assert all("scenes[0].pause_after_ms" in line for line in lines)
