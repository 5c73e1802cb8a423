"""The example scripts in templates/scripts/ load, validate and render well-formed SSML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from avatarpipe.scripts import load_bulk, load_script, plain_text, render_script_ssml
from avatarpipe.scripts.templates import templates_root

EXAMPLES = templates_root() / "scripts"
S = "{http://www.w3.org/2001/10/synthesis}"


def test_the_examples_are_there() -> None:
    names = {p.name for p in EXAMPLES.iterdir()}
    assert {
        "product-update.yaml",
        "training-lesson.yaml",
        "greeting-template.yaml",
        "greetings.csv",
    } <= names


SCRIPTS = sorted(p for p in EXAMPLES.glob("*.yaml") if not p.stem.endswith("-template"))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_every_example_loads_and_renders(path: Path) -> None:
    script = load_script(path)
    documents = render_script_ssml(script)
    assert len(documents) == len(script.scenes)
    for document in documents:
        root = ET.fromstring(document)
        assert root.tag == f"{S}speak"
        assert len(root.findall(f".//{S}voice")) == 1


def test_product_update_is_the_demo() -> None:
    script = load_script(EXAMPLES / "product-update.yaml")
    assert script.avatar.character == "contoso-presenter" and script.avatar.customized
    assert script.voice.name == "ContosoPresenterNeural" and script.voice.is_custom
    assert 3 <= len(script.scenes) <= 4
    words = sum(len(plain_text(s).split()) for s in script.scenes)
    seconds = words / 2.5 + 0.6 * (len(script.scenes) - 1)  # ~150 words a minute, scene gaps
    assert 15 <= seconds <= 25, seconds


def test_training_lesson_uses_gestures() -> None:
    script = load_script(EXAMPLES / "training-lesson.yaml")
    marks = re.findall(
        r"<bookmark mark='gesture\.([a-z0-9-]+)'/>", "".join(render_script_ssml(script))
    )
    assert len(marks) >= 3
    assert not script.avatar.customized and script.avatar.style == "casual-sitting"
    assert 4 <= len(script.scenes) <= 5


def test_greetings_bulk_example() -> None:
    scripts = load_bulk(EXAMPLES / "greetings.csv", EXAMPLES / "greeting-template.yaml")
    assert len(scripts) >= 3
    assert len({s.slug for s in scripts}) == len(scripts)
    assert all("{{" not in s.title and "{{" not in (s.scenes[0].text or "") for s in scripts)
