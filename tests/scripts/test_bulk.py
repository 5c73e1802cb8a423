"""Bulk: a CSV of rows fills a template script, one script (one video) per row."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from avatarpipe.errors import ScriptError
from avatarpipe.scripts import load_bulk, render_scene_ssml

TEMPLATE = """\
title: "Welcome, {{ name }}"
avatar: {character: lisa, style: graceful-sitting}
voice: {name: en-US-AvaMultilingualNeural}
scenes:
  - text: "Hi {{ name }}, welcome aboard from everyone at {{ company }}."
  - text: "See you soon."
"""


def write(tmp_path: Path, csv_text: str, template: str = TEMPLATE) -> tuple[Path, Path]:
    csv_path = tmp_path / "people.csv"
    csv_path.write_text(csv_text, encoding="utf-8")
    template_path = tmp_path / "template.yaml"
    template_path.write_text(template, encoding="utf-8")
    return csv_path, template_path


def test_three_rows_make_three_scripts_with_distinct_slugs(tmp_path: Path) -> None:
    csv_path, template_path = write(
        tmp_path,
        "name,company\nAda,Engines Ltd\nGrace,Compilers & Co\n"
        'Mallory,"</voice><voice name=""x"">"\n',
    )
    scripts = load_bulk(csv_path, template_path)
    assert len(scripts) == 3
    assert [s.title for s in scripts] == ["Welcome, Ada", "Welcome, Grace", "Welcome, Mallory"]
    assert [s.slug for s in scripts] == [
        "welcome-ada-001",
        "welcome-grace-002",
        "welcome-mallory-003",
    ]
    assert all(s.source == template_path.resolve() for s in scripts)
    assert scripts[1].scenes[0].text == "Hi Grace, welcome aboard from everyone at Compilers & Co."
    # A CSV value is text like any other: it cannot become markup.
    evil = scripts[2].scenes[0].text
    voice = ET.fromstring(render_scene_ssml(scripts[2], 0)).find(
        "{http://www.w3.org/2001/10/synthesis}voice"
    )
    assert voice is not None and len(voice) == 1  # only the trailing <break>
    assert voice.text == evil and '</voice><voice name="x">' in evil


def test_id_column_names_the_slugs(tmp_path: Path) -> None:
    csv_path, template_path = write(
        tmp_path,
        "id,name,company\nA-1,Ada,X\nb 2,Bob,Y\n",
        TEMPLATE.replace('title: "Welcome, {{ name }}"', "title: Welcome\nslug: hello"),
    )
    assert [s.slug for s in load_bulk(csv_path, template_path)] == ["hello-a-1", "hello-b-2"]


def test_templated_slug_is_kept(tmp_path: Path) -> None:
    csv_path, template_path = write(
        tmp_path,
        "name,company\nAda Lovelace,X\nBob,Y\n",
        TEMPLATE.replace('title: "Welcome, {{ name }}"', 'title: Hi\nslug: "hi-{{ name }}"'),
    )
    assert [s.slug for s in load_bulk(csv_path, template_path)] == ["hi-ada-lovelace", "hi-bob"]


def test_unknown_placeholder_names_csv_row_field_and_placeholder(tmp_path: Path) -> None:
    csv_path, template_path = write(
        tmp_path, "name,company\nAda,X\n", TEMPLATE.replace("{{ company }}", "{{ compnay }}")
    )
    with pytest.raises(ScriptError) as info:
        load_bulk(csv_path, template_path)
    err = info.value
    assert err.file == str(csv_path) and err.field == "scenes[0].text"
    message = str(err)
    assert message.startswith(f"{csv_path}: scenes[0].text: unknown placeholder 'compnay'")
    assert (
        "did you mean 'company'?" in message and "row 1" in message and "template.yaml" in message
    )


@pytest.mark.parametrize(
    ("csv_text", "template_change", "fragment", "field"),
    [
        ("name,company\n", None, "header but no rows", None),
        ("", None, "CSV is empty", None),
        ("name,company\nAda\n", None, "row 1 (line 2) has 1 cells; the header has 2", None),
        ("name,company\nAda,X,extra\n", None, "has 3 cells", None),
        ("first name,company\nAda,X\n", None, "not a usable placeholder name", None),
        ("name,name\nAda,X\n", None, "repeats a column", None),
        ("id,name,company\nsame,Ada,X\nsame,Ada,Y\n", None, "repeats row 1", "slug"),
        ('name,company\nAda,"unclosed\n', None, "malformed CSV", None),
        (
            "name,company\nAda,X\n",
            ("{{ company }}", "{{ name.__class__ }}"),
            "failed",
            "scenes[0].text",
        ),
        (
            "name,company\nAda,X\n",
            ("{{ company }}", "{{ company"),
            "TemplateSyntaxError",
            "scenes[0].text",
        ),
        ("name,company\nAda,X\n,Y\n", ('"Welcome, {{ name }}"', '"{{ name }}"'), "row 2", "title"),
        (
            "name,company\nAda,bad style\n",
            ("graceful-sitting", '"{{ company }}"'),
            "row 1",
            "avatar.style",
        ),
    ],
    ids=[
        "header-only",
        "empty",
        "short-row",
        "long-row",
        "bad-header",
        "duplicate-header",
        "duplicate-id",
        "unclosed-quote",
        "sandbox",
        "jinja-syntax",
        "row-fails-validation",
        "filled-value-invalid",
    ],
)
def test_bulk_errors(
    tmp_path: Path,
    csv_text: str,
    template_change: tuple[str, str] | None,
    fragment: str,
    field: str | None,
) -> None:
    template = TEMPLATE if template_change is None else TEMPLATE.replace(*template_change)
    csv_path, template_path = write(tmp_path, csv_text, template)
    with pytest.raises(ScriptError) as info:
        load_bulk(csv_path, template_path)
    assert info.value.file == str(csv_path)
    assert str(info.value).startswith(f"{csv_path}: ")
    assert fragment in str(info.value)
    assert info.value.field == field


def test_missing_files_are_named(tmp_path: Path) -> None:
    csv_path, template_path = write(tmp_path, "name,company\nAda,X\n")
    with pytest.raises(ScriptError, match="nope.csv: file not found"):
        load_bulk(tmp_path / "nope.csv", template_path)
    with pytest.raises(ScriptError, match="nope.yaml: file not found"):
        load_bulk(csv_path, tmp_path / "nope.yaml")


def test_excel_bom_and_blank_lines(tmp_path: Path) -> None:
    csv_path, template_path = write(tmp_path, "name,company\r\nAda,X\r\n\r\n,\r\nBob,Y\r\n")
    csv_path.write_bytes(b"\xef\xbb\xbf" + csv_path.read_bytes())
    scripts = load_bulk(csv_path, template_path)
    assert [s.title for s in scripts] == ["Welcome, Ada", "Welcome, Bob"]


@pytest.mark.parametrize(
    ("placeholder", "limit"),
    [
        ("{{ name * 3000000000 }}", "'\\*' would build a value of 9,000,000,000"),
        (
            "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
            "longer than 3 s",
        ),
    ],
)
def test_a_hostile_placeholder_stops_on_a_render_limit(
    tmp_path: Path, placeholder: str, limit: str
) -> None:
    csv_path, template_path = write(
        tmp_path, "name,company\nAda,Engines Ltd\n", TEMPLATE.replace("{{ name }}", placeholder, 1)
    )
    with pytest.raises(ScriptError, match=f"title: placeholder template stopped: .*{limit}"):
        load_bulk(csv_path, template_path)
