"""Script-relative SSML templates render under limits: hostile ones stop fast, with one line."""

from __future__ import annotations

import re
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jinja2 import DictLoader

from avatarpipe.errors import ScriptError
from avatarpipe.scripts.loader import load_script
from avatarpipe.scripts.sandbox import BoundedEnvironment, Limits, TemplateLimitError
from avatarpipe.scripts.ssml import render_scene_ssml

OPEN = (
    '<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="en-US">'
    '<voice name="{{ voice.name }}">'
)
CLOSE = "{{ scene.text }}</voice></speak>"
NS = "{% set ns = namespace(s='xy', n=3) %}"

HOSTILE = [
    (
        "nested-range",
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        "longer than 3 s",
    ),
    ("string-times", "{{ 'x' * 3000000000 }}", "'\\*' would build a value of 3,000,000,000"),
    ("list-times", "{{ ([1] * 3000000000)|length }}", "'\\*' would build"),
    ("int-power", "{{ 9 ** 999999 }}", "'\\*\\*' would build an integer"),
    (
        "int-squaring",
        "{% set ns = namespace(x=3) %}{% for i in range(64) %}"
        "{% set ns.x = ns.x * ns.x %}{% endfor %}",
        "'\\*' would build an integer",
    ),
    ("percent-width", "{{ '%3000000000s' % 'x' }}", "'%' formatting with width 3000000000"),
    ("percent-star", "{{ '%*s' % (3000000000, 'x') }}", "'%' formatting with width \\*"),
    ("center-filter", "{{ 'x'|center(3000000000) }}", "filter center\\(3000000000\\)"),
    ("format-filter", "{{ '%3000000000d'|format(1) }}", "'%' formatting"),
    ("str-method", "{{ 'x'.ljust(3000000000) }}", "str.ljust\\(\\) is not available"),
    (
        "concat-doubling",
        NS + "{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "would build a value|characters of values",
    ),
    (
        "plus-doubling",
        NS + "{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "would build a value|characters of values",
    ),
    (
        "replace-growth",
        NS + "{% for i in range(64) %}{% set ns.s = ns.s|replace('x', 'xx' * 99) %}{% endfor %}",
        "filter replace",
    ),
    ("join-growth", "{{ range(99999)|join('x' * 9000000) }}", "filter join"),
    (
        "block-set-doubling",
        NS + "{% for i in range(64) %}{% set b %}{{ ns.s }}{{ ns.s }}"
        "{% endset %}{% set ns.s = b %}{% endfor %}",
        "passed 2,000,000 characters|would build",
    ),
    (
        "macro-recursion",
        "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('ab') }}",
        "would build a value|characters of values|recursed too deeply",
    ),
    (
        "recursive-loop",
        "{% for a in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}",
        "longer than 3 s|recursed too deeply|passed",
    ),
    (
        "many-values",
        "{% for i in range(99999) %}{% set x = (i|string)|center(9000000) %}{% endfor %}",
        "characters of values",
    ),
    (
        "lazy-map-of-padding",
        "{{ range(99999)|map('string')|map('center', 9000000)|list|length }}",
        "characters of values",
    ),
    (
        "output-flood",
        "{% for i in range(99999) %}{{ 'x' * 9000000 }}{% endfor %}",
        "passed 2,000,000 characters",
    ),
    ("self-include", "{% include 'bomb.xml.j2' %}", "recursed too deeply|passed"),
]


def _script(
    tmp_path: Path, write_script: Callable[..., Path], base: dict[str, Any], body: str
) -> Path:
    (tmp_path / "bomb.xml.j2").write_text(OPEN + body + CLOSE, encoding="utf-8")
    base["template"] = "bomb.xml.j2"
    base["scenes"] = [{"text": "Hello."}]
    return write_script(base)


@pytest.mark.parametrize(("body", "reason"), [pytest.param(b, r, id=i) for i, b, r in HOSTILE])
def test_a_hostile_template_stops_within_the_limits_naming_the_template(
    tmp_path: Path, write_script: Callable[..., Path], base: dict[str, Any], body: str, reason: str
) -> None:
    script = load_script(_script(tmp_path, write_script, base, body), check_ssml=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(ScriptError) as info:
        render_scene_ssml(script, 0)
    elapsed = time.monotonic() - started
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    message = info.value.message
    assert "\n" not in message
    assert f"SSML template {tmp_path / 'bomb.xml.j2'} stopped: " in message
    assert "scenes[0]" in message
    assert re.search(reason, message), message
    # The time limit is 3 s per scene; the rest is the check's own slack on a shared machine.
    assert elapsed < 8, elapsed
    assert grown_kb < 512 * 1024, f"peak memory grew by {grown_kb} KB"


def test_the_default_and_ordinary_custom_templates_still_render(
    tmp_path: Path, write_script: Callable[..., Path], base: dict[str, Any]
) -> None:
    body = (
        "{% macro em(t) %}<emphasis>{{ t|upper|replace('O', '0') }}</emphasis>{% endmacro %}"
        "{% for k, v in {'a': 1}.items() %}{{ em(k ~ v) }}{% endfor %}"
        "{{ (['a', 'b'] * 2)|join(', ') }} {{ '%05d' % 42 }} {{ 2 ** 10 }} {{ 'ab'|center(6) }}"
    )
    script = load_script(_script(tmp_path, write_script, base, body))
    document = render_scene_ssml(script, 0)
    assert "<emphasis>A1</emphasis>" in document
    assert "a, b, a, b 00042 1024" in document and "Hello." in document
    base.pop("template")
    assert "Hello." in render_scene_ssml(load_script(write_script(base, "plain.yaml")), 0)


def test_lipsum_is_not_offered_and_limits_hold_outside_render() -> None:
    env = BoundedEnvironment(loader=DictLoader({"loops": HOSTILE[0][1]}))
    assert "lipsum" not in env.globals
    with pytest.raises(TemplateLimitError, match="would build"):
        env.from_string("{{ 'x' * 3000000000 }}").render()
    started = time.monotonic()
    with pytest.raises(TemplateLimitError, match="longer than 0.2 s"):
        env.render("loops", {}, Limits(seconds=0.2))
    assert time.monotonic() - started < 3
