"""Scene text: inline markers, paragraphs and the segments the SSML template renders.

A scene's ``text`` is plain prose with two optional inline markers:

- ``[gesture:NAME]`` plays an avatar gesture at that point (rendered as
  ``<bookmark mark='gesture.NAME'/>``; names are per character and style, e.g. ``wave-left-1``);
- ``[pause:500ms]`` or ``[pause:1.5s]`` inserts a pause (``<break time="500ms"/>``).

A blank line separates paragraphs; a paragraph boundary becomes a short break. Any other text in
square brackets is ordinary text. A marker that starts like one of the two above but is malformed
(``[gesture:Wave Left]``, ``[pause:soon]``) is an error rather than silently spoken.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "GESTURE_NAME_RE",
    "MAX_PAUSE_MS",
    "PARAGRAPH_BREAK_MS",
    "Segment",
    "TextMarkerError",
    "find_control_char",
    "has_speakable",
    "parse_segments",
    "spoken_text",
]

GESTURE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
"""Gesture names as Azure spells them: lowercase, digits and dashes (``numeric1-left-1``)."""

MAX_PAUSE_MS = 20_000
"""The longest single ``<break>`` Azure honours."""

PARAGRAPH_BREAK_MS = 400
"""The pause rendered between paragraphs of one scene."""

_MARKER_RE = re.compile(r"\[(gesture|pause)\s*:([^\]\n]*)\]", re.IGNORECASE)
_MARKER_START_RE = re.compile(r"\[(gesture|pause)\s*:", re.IGNORECASE)
_PAUSE_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")
_PARAGRAPH_RE = re.compile(r"\n[ \t]*\n\s*")
# XML 1.0 forbids these code points even when escaped.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# Letters that render as nothing (Hangul fillers, the braille blank).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


class TextMarkerError(ValueError):
    """A malformed inline marker in scene text."""


@dataclass(frozen=True)
class Segment:
    """One piece of a scene: spoken text, a gesture bookmark, or a pause.

    Attributes:
        kind: ``text``, ``gesture`` or ``pause``.
        text: The words, for ``text`` segments.
        name: The gesture name, for ``gesture`` segments.
        ms: The pause length in milliseconds, for ``pause`` segments.
        paragraph: ``True`` for the pause that separates two paragraphs.
    """

    kind: Literal["text", "gesture", "pause"]
    text: str = ""
    name: str = ""
    ms: int = 0
    paragraph: bool = False


def find_control_char(text: str) -> int | None:
    """Return the index of the first character XML cannot carry, or ``None``.

    Args:
        text: Any text headed for an XML document.

    Returns:
        The position of the first forbidden control character, or ``None`` when there is none.
    """
    match = _CONTROL_RE.search(text)
    return match.start() if match else None


def has_speakable(text: str) -> bool:
    """Say whether ``text`` holds a character a voice can speak.

    Whitespace, separators, control and format characters (zero-width spaces and joiners,
    U+2060..U+2064, the BOM, soft hyphens and every other ``Cc``/``Cf`` character), lone
    combining marks and blank fillers do not count.

    Args:
        text: Any text.

    Returns:
        ``True`` when at least one character is speakable.
    """
    return any(
        not unicodedata.category(ch).startswith(("C", "Z", "M"))
        and not ch.isspace()
        and ch not in _BLANK_LETTERS
        for ch in text
    )


def _parse_pause(raw: str) -> int:
    match = _PAUSE_RE.match(raw.strip().lower())
    if not match:
        raise TextMarkerError(
            f"bad pause marker '[pause:{raw}]'; write a duration like [pause:500ms] or [pause:1.5s]"
        )
    value = float(match.group(1)) * (1 if match.group(2) == "ms" else 1000)
    ms = round(value)
    if ms > MAX_PAUSE_MS:
        raise TextMarkerError(f"pause marker '[pause:{raw}]' is longer than {MAX_PAUSE_MS} ms")
    return ms


def _parse_paragraph(paragraph: str) -> list[Segment]:
    segments: list[Segment] = []
    pos = 0
    for match in _MARKER_RE.finditer(paragraph):
        if match.start() > pos:
            segments.append(Segment("text", text=paragraph[pos : match.start()]))
        kind, raw = match.group(1).lower(), match.group(2)
        if kind == "gesture":
            name = raw.strip()
            if not GESTURE_NAME_RE.match(name):
                raise TextMarkerError(
                    f"bad gesture marker '[gesture:{raw}]'; gesture names are lowercase letters, "
                    "digits and dashes, like [gesture:wave-left-1]"
                )
            segments.append(Segment("gesture", name=name))
        else:
            segments.append(Segment("pause", ms=_parse_pause(raw)))
        pos = match.end()
    if pos < len(paragraph):
        segments.append(Segment("text", text=paragraph[pos:]))
    # A marker opening that never matched a whole marker ("[gesture:wave" with no bracket).
    for seg in segments:
        if seg.kind == "text" and (bad := _MARKER_START_RE.search(seg.text)):
            snippet = seg.text[bad.start() : bad.start() + 30]
            raise TextMarkerError(f"unclosed marker starting at {snippet!r}; close it with ']'")
    return segments


def parse_segments(text: str) -> list[Segment]:
    """Split scene text into text, gesture and pause segments.

    Paragraphs (separated by a blank line) are joined by a pause of
    :data:`PARAGRAPH_BREAK_MS`. Leading and trailing whitespace of the whole text is dropped.

    Args:
        text: The scene's ``text`` field.

    Returns:
        The segments in order.

    Raises:
        TextMarkerError: A ``[gesture:...]`` or ``[pause:...]`` marker is malformed.
    """
    paragraphs = [p for p in _PARAGRAPH_RE.split(text.strip()) if p.strip()]
    segments: list[Segment] = []
    for i, paragraph in enumerate(paragraphs):
        if i:
            segments.append(Segment("pause", ms=PARAGRAPH_BREAK_MS, paragraph=True))
        segments.extend(_parse_paragraph(paragraph))
    return segments


def spoken_text(segments: list[Segment], *, paragraph_sep: str = "\r\n") -> str:
    """Return the words of ``segments`` without markers, whitespace collapsed.

    Args:
        segments: What :func:`parse_segments` returned.
        paragraph_sep: What joins paragraphs (Azure PlainText inputs use CR LF).

    Returns:
        The plain words; paragraphs joined by ``paragraph_sep``.
    """
    paragraphs: list[list[str]] = [[]]
    for seg in segments:
        if seg.kind == "text":
            paragraphs[-1].append(seg.text)
        elif seg.paragraph:
            paragraphs.append([])
    joined = (" ".join("".join(p).split()) for p in paragraphs)
    return paragraph_sep.join(p for p in joined if p)
