"""Subtitle cues: built from the service's word boundaries, written as SRT/VTT/ASS, parsed back.

Word boundaries come in the Azure batch shape, one list per input (scene), times in
milliseconds from the start of that input::

    [{"Text": "Welcome", "AudioOffset": 50, "Duration": 437}, ...]

Cues of several scenes are put on one timeline with :func:`offset_cues` / :func:`join_scene_cues`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from avatarpipe.errors import InvalidInputError

__all__ = [
    "Cue",
    "cues_from_word_boundaries",
    "join_scene_cues",
    "offset_cues",
    "parse_subtitles",
    "to_ass",
    "to_srt",
    "to_vtt",
    "write_subtitles",
]

_SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")
_NO_SPACE_BEFORE = (",", ".", "!", "?", ";", ":", "…", ")", "'s", "%")
_MIN_CUE_MS = 700
_MAX_GAP_MS = 1500


@dataclass(frozen=True)
class Cue:
    """One subtitle cue.

    Attributes:
        start_ms: Start time in milliseconds.
        end_ms: End time in milliseconds.
        text: The text; lines separated by newlines.
    """

    start_ms: int
    end_ms: int
    text: str


def _field(item: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in item:
            return item[name]
    raise KeyError(names[0])


def _join_words(words: Sequence[str]) -> str:
    out = ""
    for word in words:
        if out and not word.startswith(_NO_SPACE_BEFORE):
            out += " "
        out += word
    return out


def _wrap(words: Sequence[str], max_chars: int) -> list[str]:
    lines: list[list[str]] = [[]]
    for word in words:
        if lines[-1] and len(_join_words([*lines[-1], word])) > max_chars:
            lines.append([])
        lines[-1].append(word)
    return [_join_words(line) for line in lines if line]


def cues_from_word_boundaries(
    boundaries: Iterable[Mapping[str, Any]], *, max_chars: int = 42, max_lines: int = 2
) -> list[Cue]:
    """Group word boundaries into readable cues.

    A cue holds at most ``max_lines`` lines of at most ``max_chars`` characters, never spans a
    sentence end or a pause longer than 1.5 s, and lasts at least 0.7 s when the next cue leaves
    room.

    Args:
        boundaries: Items with ``Text``, ``AudioOffset`` and ``Duration`` (ms); lower-camel
            keys (``text``, ``audioOffset``, ``duration``) are accepted too. Items whose
            ``BoundaryType`` is ``PunctuationBoundary`` are attached to the previous word.
        max_chars: Maximum characters per line.
        max_lines: Maximum lines per cue.

    Returns:
        Cues in time order.

    Raises:
        InvalidInputError: An item lacks a field or has a negative time.
    """
    words: list[tuple[str, int, int]] = []
    for i, item in enumerate(boundaries):
        try:
            text = str(_field(item, "Text", "text")).strip()
            start = int(_field(item, "AudioOffset", "audioOffset", "offset"))
            dur = int(_field(item, "Duration", "duration"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"word boundary [{i}]: needs Text, AudioOffset and Duration (ms): {item!r}"
            ) from exc
        if start < 0 or dur < 0:
            raise InvalidInputError(f"word boundary [{i}]: negative time in {item!r}")
        if not text:
            continue
        kind = str(item.get("BoundaryType", item.get("boundaryType", "")))
        if words and (kind == "PunctuationBoundary" or text in _NO_SPACE_BEFORE):
            w, s, e = words[-1]
            words[-1] = (w + text, s, max(e, start + dur))
            continue
        words.append((text, start, start + dur))

    groups: list[list[tuple[str, int, int]]] = []
    for word in words:
        if groups:
            current = groups[-1]
            candidate = [w for w, _, _ in current] + [word[0]]
            fits = len(_wrap(candidate, max_chars)) <= max_lines
            sentence_over = current[-1][0].endswith(_SENTENCE_END)
            pause = word[1] - current[-1][2] > _MAX_GAP_MS
            if fits and not sentence_over and not pause:
                current.append(word)
                continue
        groups.append([word])

    cues: list[Cue] = []
    for idx, group in enumerate(groups):
        start, end = group[0][1], group[-1][2]
        next_start = groups[idx + 1][0][1] if idx + 1 < len(groups) else None
        end = max(end, start + _MIN_CUE_MS)
        if next_start is not None:
            end = min(end, next_start)
        end = max(end, start + 1)
        cues.append(Cue(start, end, "\n".join(_wrap([w for w, _, _ in group], max_chars))))
    return cues


def offset_cues(cues: Iterable[Cue], offset_ms: int) -> list[Cue]:
    """Shift cues by ``offset_ms`` (for a scene that starts later in the output).

    Args:
        cues: Cues on the scene's own timeline.
        offset_ms: Where the scene starts in the output.

    Returns:
        The shifted cues.
    """
    return [replace(c, start_ms=c.start_ms + offset_ms, end_ms=c.end_ms + offset_ms) for c in cues]


def join_scene_cues(
    scene_cues: Sequence[Sequence[Cue]], scene_offsets_ms: Sequence[int]
) -> list[Cue]:
    """Put each scene's cues on the output timeline and clip them to their scene.

    Args:
        scene_cues: One cue list per scene, each on that scene's timeline.
        scene_offsets_ms: Where each scene starts in the output, plus one final entry for where
            the last scene ends (so ``len(scene_offsets_ms) == len(scene_cues) + 1``).

    Returns:
        All cues on one timeline, none crossing into the next scene.

    Raises:
        InvalidInputError: The offsets do not match the scenes.
    """
    if len(scene_offsets_ms) != len(scene_cues) + 1:
        raise InvalidInputError(
            f"need {len(scene_cues) + 1} scene offsets (starts plus end), "
            f"got {len(scene_offsets_ms)}"
        )
    out: list[Cue] = []
    for cues, start, stop in zip(scene_cues, scene_offsets_ms, scene_offsets_ms[1:], strict=False):
        for cue in offset_cues(cues, start):
            if cue.start_ms >= stop:
                continue
            out.append(replace(cue, end_ms=min(cue.end_ms, stop)))
    return out


def _ts(ms: int, sep: str) -> str:
    h, rem = divmod(max(0, ms), 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms_ = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms_:03d}"


def to_srt(cues: Iterable[Cue]) -> str:
    """Format cues as SubRip (SRT).

    Args:
        cues: The cues.

    Returns:
        The SRT text.
    """
    blocks = [
        f"{i}\n{_ts(c.start_ms, ',')} --> {_ts(c.end_ms, ',')}\n{c.text}\n"
        for i, c in enumerate(cues, 1)
    ]
    return "\n".join(blocks)


def to_vtt(cues: Iterable[Cue]) -> str:
    """Format cues as WebVTT.

    Args:
        cues: The cues.

    Returns:
        The WebVTT text.
    """
    blocks = [f"{_ts(c.start_ms, '.')} --> {_ts(c.end_ms, '.')}\n{c.text}\n" for c in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)


def _ass_color(hex_color: str) -> str:
    rgb = hex_color.lstrip("#")
    r, g, b = rgb[0:2], rgb[2:4], rgb[4:6]
    alpha = 255 - int(rgb[6:8], 16) if len(rgb) == 8 else 0
    return f"&H{alpha:02X}{b}{g}{r}".upper()


def _ass_ts(ms: int) -> str:
    cs = max(0, ms) // 10
    h, rem = divmod(cs, 360_000)
    m, rem = divmod(rem, 6000)
    s, cs_ = divmod(rem, 100)
    return f"{h}:{m:02d}:{s:02d}.{cs_:02d}"


def to_ass(
    cues: Iterable[Cue],
    *,
    width: int,
    height: int,
    font: str = "DejaVu Sans",
    size_pct: float = 4.5,
    color: str = "#FFFFFF",
    outline_color: str = "#000000",
    outline_px: float = 3.0,
    bold: bool = False,
    margin_pct: float = 6.0,
) -> str:
    """Format cues as a styled ASS script sized for a ``width`` x ``height`` picture.

    Burning an ASS file keeps the styling in the file, so no ``force_style`` escaping is needed
    in the filter graph, and sizes stay proportional across aspect variants.

    Args:
        cues: The cues.
        width: Output width (``PlayResX``).
        height: Output height (``PlayResY``).
        font: Font family.
        size_pct: Font size as a percentage of ``height``.
        color: Text colour ``#RRGGBB[AA]``.
        outline_color: Outline colour.
        outline_px: Outline width at 1080 px of height.
        bold: Bold text.
        margin_pct: Bottom margin as a percentage of ``height``.

    Returns:
        The ASS text.
    """
    size = max(8, round(height * size_pct / 100))
    outline = round(outline_px * height / 1080, 2)
    margin_v = round(height * margin_pct / 100)
    margin_h = round(width * 0.05)
    header = (
        "[Script Info]\nScriptType: v4.00+\nWrapStyle: 0\nScaledBorderAndShadow: yes\n"
        f"PlayResX: {width}\nPlayResY: {height}\n\n"
        "[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, "
        "OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, "
        "Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
        f"Style: Default,{font},{size},{_ass_color(color)},&H000000FF,"
        f"{_ass_color(outline_color)},&H80000000,{-1 if bold else 0},0,0,0,100,100,0,0,1,"
        f"{outline},0,2,{margin_h},{margin_h},{margin_v},1\n\n"
        "[Events]\nFormat: Layer, Start, End, Style, Name, "
        "MarginL, MarginR, MarginV, Effect, Text\n"
    )
    events = [
        f"Dialogue: 0,{_ass_ts(c.start_ms)},{_ass_ts(c.end_ms)},Default,,0,0,0,,"
        + c.text.replace("{", "(").replace("}", ")").replace("\n", "\\N")
        for c in cues
    ]
    return header + "\n".join(events) + "\n"


def write_subtitles(cues: Sequence[Cue], path: str | Path) -> Path:
    """Write cues as SRT or VTT, chosen by the file suffix.

    Args:
        cues: The cues.
        path: ``*.srt`` or ``*.vtt``.

    Returns:
        The written path.

    Raises:
        InvalidInputError: The suffix is neither ``.srt`` nor ``.vtt``.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".srt":
        p.write_text(to_srt(cues), encoding="utf-8")
    elif suffix == ".vtt":
        p.write_text(to_vtt(cues), encoding="utf-8")
    else:
        raise InvalidInputError(f"{p}: subtitle files must end in .srt or .vtt")
    return p


_TIMING_RE = re.compile(
    r"^(?P<a>(?:\d+:)?\d{1,2}:\d{2}[.,]\d{3})\s+-->\s+(?P<b>(?:\d+:)?\d{1,2}:\d{2}[.,]\d{3})"
)


def _parse_ts(text: str) -> int:
    parts = text.replace(",", ".").split(":")
    secs = float(parts[-1])
    mins = int(parts[-2])
    hours = int(parts[-3]) if len(parts) == 3 else 0
    return round(((hours * 60 + mins) * 60 + secs) * 1000)


def parse_subtitles(source: str | Path) -> list[Cue]:
    """Parse a WebVTT or SRT file (or text) into cues.

    Args:
        source: A path to a ``.vtt``/``.srt`` file, or the subtitle text itself.

    Returns:
        The cues in file order (VTT cue settings, notes and styles are dropped).

    Raises:
        InvalidInputError: The file cannot be read or holds no cue.
    """
    if isinstance(source, Path) or (
        "\n" not in source and source.lower().endswith((".vtt", ".srt"))
    ):
        try:
            text = Path(source).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise InvalidInputError(f"{source}: cannot read subtitles: {exc}") from exc
    else:
        text = source
    cues: list[Cue] = []
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip())
    for block in blocks:
        lines = block.split("\n")
        for i, line in enumerate(lines):
            m = _TIMING_RE.match(line.strip())
            if m:
                body = "\n".join(lines[i + 1 :]).strip()
                cues.append(Cue(_parse_ts(m["a"]), _parse_ts(m["b"]), body))
                break
    if not cues:
        raise InvalidInputError(f"{str(source)[:80]!r}: no subtitle cues found")
    return cues
