"""Scripts to SSML: one document per scene, rendered from a Jinja2 template with XML autoescape.

Scene ``text`` is escaped by the template engine, so nothing a script says can become markup
(``</voice><voice name="x">`` is spoken literally). A scene's raw ``ssml`` is inserted as-is
only after :func:`check_fragment` accepts it: well-formed, no DTD or entities, and only the SSML
elements that belong inside ``<voice>``. Every rendered document is parsed again before it is
returned, and must hold exactly one ``<voice>``.
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from markupsafe import Markup

from avatarpipe.errors import ScriptError
from avatarpipe.hashing import file_digest
from avatarpipe.scripts.model import MAX_SSML_BYTES, Scene, Script
from avatarpipe.scripts.sandbox import BoundedEnvironment, Limits, TemplateLimitError
from avatarpipe.scripts.templates import DEFAULT_SSML_TEMPLATE, find_template, templates_root
from avatarpipe.scripts.text import has_speakable, parse_segments, spoken_text

__all__ = [
    "DEFAULT_SCENE_PAUSE_MS",
    "MSTTS_NS",
    "SSML_NS",
    "check_fragment",
    "plain_text",
    "render_scene_ssml",
    "render_script_ssml",
    "script_hash",
]

SSML_NS = "http://www.w3.org/2001/10/synthesis"
MSTTS_NS = "https://www.w3.org/2001/mstts"
DEFAULT_SCENE_PAUSE_MS = 600
"""Silence at the end of every scene but the last, unless the scene sets ``pause_after_ms``."""

_ALLOWED = {
    SSML_NS: {
        "break",
        "bookmark",
        "emphasis",
        "lang",
        "p",
        "s",
        "phoneme",
        "prosody",
        "say-as",
        "sub",
    },
    MSTTS_NS: {"express-as", "silence", "audioduration"},
}
_FORBIDDEN_RE = re.compile(r"<!DOCTYPE|<!ENTITY|<\?", re.IGNORECASE)
_WRAP_OPEN = f'<avatarpipe-fragment xmlns="{SSML_NS}" xmlns:mstts="{MSTTS_NS}">\n'
_WRAP_CLOSE = "\n</avatarpipe-fragment>"


def _local(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def _parse_fragment(fragment: str) -> ET.Element:
    return ET.fromstring(_WRAP_OPEN + fragment + _WRAP_CLOSE)


def check_fragment(fragment: str) -> str | None:
    """Say why an SSML fragment cannot go inside ``<voice>``, or return ``None``.

    Args:
        fragment: A scene's ``ssml`` field, e.g. ``Hello <break time="300ms"/> world``.

    Returns:
        The reason it is rejected (one line), or ``None`` when it is acceptable.
    """
    if _FORBIDDEN_RE.search(fragment):
        return "ssml may not contain a DOCTYPE, entity declarations or processing instructions"
    try:
        root = _parse_fragment(fragment)
    except ET.ParseError as exc:
        line, column = exc.position
        return f"ssml is not well-formed XML (line {line - 1}, column {column}): {_reason(exc)}"
    for element in root.iter():
        if element is root:
            continue
        ns, name = _local(element.tag)
        if name in ("voice", "speak") and ns in (SSML_NS, ""):
            return f"ssml may not contain <{name}>: the script's voice wraps every scene"
        if name not in _ALLOWED.get(ns, set()):
            shown = f"mstts:{name}" if ns == MSTTS_NS else name
            allowed = sorted(_ALLOWED[SSML_NS]) + sorted(f"mstts:{n}" for n in _ALLOWED[MSTTS_NS])
            return (
                f"ssml element <{shown}> is not allowed inside <voice>; "
                f"allowed: {', '.join(allowed)}"
            )
    if not has_speakable("".join(root.itertext())):
        return "ssml has no words to speak"
    return None


def _reason(exc: ET.ParseError) -> str:
    return str(exc).split(":", 1)[0]


@lru_cache(maxsize=16)
def _environment(search_path: tuple[str, ...]) -> BoundedEnvironment:
    return BoundedEnvironment(
        loader=FileSystemLoader(list(search_path)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _label(script: Script) -> str | None:
    return str(script.source) if script.source is not None else None


def _template_name(script: Script) -> str:
    return script.template or DEFAULT_SSML_TEMPLATE


def _search_path(script: Script) -> tuple[str, ...]:
    roots = [str(templates_root())]
    if script.source is not None:
        roots.append(str(script.source.parent))
    return tuple(roots)


def render_scene_ssml(script: Script, scene_index: int) -> str:
    """Render one scene as a complete SSML document.

    Args:
        script: A validated script.
        scene_index: Which scene (0-based).

    Returns:
        ``<speak ...><voice name="..."> ... </voice></speak>``, checked to be well-formed, to hold
        exactly one ``<voice>`` and to be at most ``MAX_SSML_BYTES`` bytes.

    Raises:
        ScriptError: The template is missing or fails, or the result is malformed or too large;
            the error names the scene (``scenes[3]``).
        IndexError: There is no such scene.
        ConfigError: The project's ``templates/`` directory cannot be found.
    """
    scene = script.scenes[scene_index]
    field = f"scenes[{scene_index}]"
    file = _label(script)
    count = len(script.scenes)
    voice = script.voice
    prosody = {k: v for k in ("rate", "pitch", "volume") if (v := getattr(voice, k)) is not None}
    pause = scene.pause_after_ms
    if pause is None:
        pause = DEFAULT_SCENE_PAUSE_MS if scene_index < count - 1 else 0
    context: dict[str, Any] = {
        "script": script,
        "scene": scene,
        "index": scene_index,
        "count": count,
        "voice": voice,
        "locale": voice.effective_locale,
        "prosody": prosody,
        "gestures": list(scene.gestures),
        "segments": parse_segments(scene.text) if scene.text is not None else [],
        "fragment": Markup(scene.ssml) if scene.ssml is not None else None,
        "pause_after_ms": pause,
    }
    name = _template_name(script)
    try:
        document = _environment(_search_path(script)).render(name, context, Limits())
    except TemplateLimitError as exc:
        where = find_template(name, script.source.parent if script.source else None) or name
        raise ScriptError(f"SSML template {where} stopped: {exc}", file=file, field=field) from None
    except TemplateError as exc:
        raise ScriptError(
            f"SSML template {name!r} failed: {type(exc).__name__}: {exc}", file=file, field=field
        ) from exc
    size = len(document.encode("utf-8"))
    if size > MAX_SSML_BYTES:
        raise ScriptError(
            f"rendered SSML is {size} bytes; the limit per input is {MAX_SSML_BYTES}; "
            "split the scene",
            file=file,
            field=field,
        )
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise ScriptError(
            f"rendered SSML is not well-formed ({exc}); check the template {name!r}",
            file=file,
            field=field,
        ) from exc
    voices = root.findall(f".//{{{SSML_NS}}}voice")
    if root.tag != f"{{{SSML_NS}}}speak" or len(voices) != 1:
        raise ScriptError(
            f"rendered SSML must be one <speak> holding exactly one <voice> "
            f"(found {len(voices)}); check the template {name!r}",
            file=file,
            field=field,
        )
    return document


def render_script_ssml(script: Script) -> list[str]:
    """Render every scene (one SSML document per synthesis input).

    Args:
        script: A validated script.

    Returns:
        One SSML document per scene, in scene order.

    Raises:
        ScriptError: A scene fails to render; the error names it.
        ConfigError: The project's ``templates/`` directory cannot be found.
    """
    return [render_scene_ssml(script, i) for i in range(len(script.scenes))]


def plain_text(scene: Scene) -> str:
    """Return the words a scene speaks, for ``PlainText`` inputs and subtitles checks.

    Markers and SSML tags are dropped and whitespace collapsed; paragraphs of a text scene are
    joined by CR LF (a new paragraph in an Azure PlainText input).

    Args:
        scene: A validated scene.

    Returns:
        The spoken words.
    """
    if scene.text is not None:
        return spoken_text(parse_segments(scene.text))
    root = _parse_fragment(scene.ssml or "")
    return " ".join("".join(root.itertext()).split())


def _file_digest(path: Path) -> str | None:
    try:
        return file_digest(path)
    except OSError:
        return None


def script_hash(script: Script) -> str:
    """Return a sha256 over the script's canonical JSON, for change detection.

    Asset paths are replaced by their file name and content hash, and the SSML template's content
    hash is included, so moving the checkout does not change the hash but editing an asset or the
    template does.

    Args:
        script: A validated script.

    Returns:
        64 lowercase hex digits.

    Raises:
        ConfigError: The project's ``templates/`` directory cannot be found.
    """
    data = script.model_dump(mode="json")
    post = data["post"]
    for key in ("intro", "outro", "music", "logo"):
        path = getattr(script.post, key)
        if path is not None:
            post[key] = {"name": path.name, "sha256": _file_digest(path)}
    name = _template_name(script)
    template = find_template(name, script.source.parent if script.source else None)
    data["template"] = {"name": name, "sha256": _file_digest(template) if template else None}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
