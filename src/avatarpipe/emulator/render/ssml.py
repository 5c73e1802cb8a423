"""Plain text and SSML inputs turned into a flat list of things to say, pauses and bookmarks.

The emulator does not hand SSML to eSpeak: it reads the SSML subset Azure's avatar inputs use with
:mod:`xml.etree.ElementTree` (DOCTYPE and entity declarations are refused before parsing, so no
entity expansion can happen) and synthesizes each run of text with its own voice and prosody.

Understood: ``speak``, ``voice`` (locale from the Azure voice name), ``lang``, ``prosody``
(rate, pitch, volume), ``break`` (time or strength), ``bookmark``, ``sub`` (alias), ``p``/``s``
(sentence breaks). Every other element, ``mstts:*`` included, is transparent: its text is spoken
and the element itself is ignored.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace

from avatarpipe.errors import RequestValidationError
from avatarpipe.prosody import parse_break_ms, parse_pitch, parse_rate, parse_volume

__all__ = [
    "Bookmark",
    "Pause",
    "Piece",
    "Prosody",
    "Say",
    "parse_input",
    "parse_pitch",
    "parse_rate",
    "parse_volume",
]

DEFAULT_LOCALE = "en-US"
_SPOKEN = re.compile(r"\w")
_FORBIDDEN = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass(frozen=True)
class Prosody:
    """Prosody relative to the voice's defaults.

    Attributes:
        rate: Speaking-rate multiplier (1.0 is the voice's default).
        pitch: Pitch multiplier (1.0 is the voice's default).
        volume: Volume on Azure's 0-100 scale (100 is the default, full volume).
    """

    rate: float = 1.0
    pitch: float = 1.0
    volume: float = 100.0


@dataclass(frozen=True)
class Say:
    """A run of text spoken with one voice and one prosody.

    Attributes:
        text: The text, whitespace-normalised.
        voice: The Azure voice name, when one was given.
        locale: The locale to speak in (``en-US``).
        prosody: The prosody in force.
    """

    text: str
    voice: str | None
    locale: str
    prosody: Prosody


@dataclass(frozen=True)
class Pause:
    """Silence of a given length.

    Attributes:
        ms: Milliseconds of silence.
    """

    ms: int


@dataclass(frozen=True)
class Bookmark:
    """A named point in the speech (``<bookmark mark="gesture.wave"/>``).

    Attributes:
        name: The mark.
    """

    name: str


Piece = Say | Pause | Bookmark


def locale_of_voice(voice: str | None) -> str | None:
    """Return the locale an Azure voice name starts with (``en-US-AvaNeural`` -> ``en-US``).

    Args:
        voice: An Azure voice name, or ``None``.

    Returns:
        The locale, or ``None`` when the name has none (custom voices are often bare names).
    """
    if not voice:
        return None
    m = re.match(r"^([a-zA-Z]{2,3})-([a-zA-Z]{2,4}|\d{3})(?:-|$)", voice.strip())
    if not m:
        return None
    return f"{m[1].lower()}-{m[2].upper() if len(m[2]) == 2 else m[2]}"


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""  # comments and processing instructions
    return tag.rsplit("}", 1)[-1].split(":")[-1].lower()


def _attr(elem: ET.Element, name: str) -> str | None:
    for key, value in elem.attrib.items():
        if key.rsplit("}", 1)[-1] == name:
            return value
    return None


@dataclass(frozen=True)
class _Ctx:
    voice: str | None
    locale: str
    prosody: Prosody


class _Builder:
    def __init__(self) -> None:
        self.pieces: list[Piece] = []
        self._parts: list[str] = []
        self._ctx: _Ctx | None = None

    def text(self, text: str | None, ctx: _Ctx) -> None:
        if not text:
            return
        if self._ctx is not None and ctx != self._ctx and "".join(self._parts).strip():
            self.flush()
        self._ctx = ctx
        self._parts.append(text)

    def flush(self) -> None:
        text = " ".join("".join(self._parts).split())
        if text and self._ctx is not None:
            last = self.pieces[-1] if self.pieces else None
            if isinstance(last, Say) and not _SPOKEN.search(text):
                # Bare punctuation after an element ("<prosody>fast</prosody>.") ends the
                # previous run rather than becoming a run of its own.
                self.pieces[-1] = replace(last, text=last.text + text)
            else:
                self.pieces.append(Say(text, self._ctx.voice, self._ctx.locale, self._ctx.prosody))
        self._parts = []

    def add(self, piece: Piece) -> None:
        self.flush()
        self.pieces.append(piece)


def _walk(elem: ET.Element, ctx: _Ctx, out: _Builder) -> None:
    name = _local(elem.tag)
    if name == "voice":
        voice = _attr(elem, "name") or ctx.voice
        locale = _attr(elem, "lang") or locale_of_voice(voice) or ctx.locale
        ctx = replace(ctx, voice=voice, locale=locale)
    elif name == "lang":
        ctx = replace(ctx, locale=_attr(elem, "lang") or ctx.locale)
    elif name == "prosody":
        p = ctx.prosody
        ctx = replace(
            ctx,
            prosody=Prosody(
                rate=parse_rate(_attr(elem, "rate"), p.rate),
                pitch=parse_pitch(_attr(elem, "pitch"), p.pitch),
                volume=parse_volume(_attr(elem, "volume"), p.volume),
            ),
        )
    elif name == "break":
        out.add(Pause(parse_break_ms(_attr(elem, "time"), _attr(elem, "strength"))))
        return
    elif name == "bookmark":
        mark = _attr(elem, "mark")
        if mark:
            out.add(Bookmark(mark))
        return
    elif name == "sub":
        alias = _attr(elem, "alias")
        if alias is not None:
            out.text(f" {alias} ", ctx)
            return
    elif name in ("p", "s"):
        out.flush()

    if not _local(elem.tag):
        return
    out.text(elem.text, ctx)
    for child in elem:
        _walk(child, ctx, out)
        out.text(child.tail, ctx)
    if name in ("p", "s", "voice"):
        out.flush()


def parse_ssml(content: str, *, default_voice: str | None = None) -> list[Piece]:
    """Parse an SSML document into pieces.

    Args:
        content: A whole ``<speak>`` document.
        default_voice: The voice used outside any ``<voice>`` element.

    Returns:
        Pieces in speaking order.

    Raises:
        RequestValidationError: The document is not well-formed XML, declares a DOCTYPE or
            entities, or its root element is not ``speak``.
    """
    if _FORBIDDEN.search(content):
        raise RequestValidationError("SSML input: DOCTYPE and ENTITY declarations are not allowed")
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        line, col = exc.position
        raise RequestValidationError(
            f"SSML input is not well-formed XML at line {line}, column {col}"
        ) from exc
    if _local(root.tag) != "speak":
        raise RequestValidationError(
            f"SSML input: the root element must be <speak>, not <{_local(root.tag)}>"
        )
    locale = _attr(root, "lang") or locale_of_voice(default_voice) or DEFAULT_LOCALE
    out = _Builder()
    _walk(root, _Ctx(default_voice, locale, Prosody()), out)
    out.flush()
    return out.pieces


def parse_input(
    content: str,
    kind: str,
    *,
    voice: str | None = None,
    rate: str | None = None,
    pitch: str | None = None,
    volume: str | None = None,
) -> list[Piece]:
    """Turn one batch input into pieces to synthesize.

    Args:
        content: Plain text, or a whole ``<speak>`` SSML document.
        kind: ``PlainText`` or ``SSML`` (case-insensitive).
        voice: ``synthesisConfig.voice`` (plain text; the SSML default voice).
        rate: ``synthesisConfig.rate`` (plain text only).
        pitch: ``synthesisConfig.pitch`` (plain text only).
        volume: ``synthesisConfig.volume`` (plain text only).

    Returns:
        Pieces in speaking order. Plain text paragraphs (CRLF-separated) become separate pieces.

    Raises:
        RequestValidationError: The input kind is unknown or the SSML is invalid.
    """
    k = kind.strip().lower()
    if k == "ssml":
        return parse_ssml(content, default_voice=voice)
    if k != "plaintext":
        raise RequestValidationError(f"inputKind {kind!r} is not PlainText or SSML")
    prosody = Prosody(rate=parse_rate(rate), pitch=parse_pitch(pitch), volume=parse_volume(volume))
    locale = locale_of_voice(voice) or DEFAULT_LOCALE
    pieces: list[Piece] = []
    for paragraph in re.split(r"\r?\n\s*\r?\n|\r\n", content):
        text = " ".join(paragraph.split())
        if text:
            pieces.append(Say(text, voice, locale, prosody))
    return pieces
