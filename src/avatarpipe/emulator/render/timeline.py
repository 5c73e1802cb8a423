"""Per-frame state of the presenter, and the timed text that goes with the video.

Phonemes become mouth shapes (visemes), a seeded schedule adds blinks, and the frame states are
run-length encoded into an ffconcat list of head sprites with frame-exact durations (25 fps): the
only per-frame work left is ffmpeg's. Word and sentence timings become subtitle cues (WebVTT, or
Pillow-drawn strips that ffmpeg burns in) and Azure's boundary files.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from avatarpipe.emulator.render.speech import (
    FPS,
    MarkTiming,
    PhonemeTiming,
    SentenceTiming,
    WordTiming,
)

__all__ = [
    "Cue",
    "blink_frames",
    "boundary_json",
    "build_cues",
    "frame_visemes",
    "gesture_expr",
    "viseme_of",
    "write_cue_strips",
    "write_ffconcat",
    "write_head_track",
    "write_vtt",
]

FRAME_MS = 1000 // FPS  # 40

_ROUND = ("o", "O", "u", "U", "w")
_WIDE = ("a", "A", "{", "E", "e", "V", "3", "&", "@2")


def viseme_of(phoneme: str) -> str:
    """Map an eSpeak phoneme mnemonic to one of the mouth shapes.

    Args:
        phoneme: eSpeak's phoneme name, stress marks removed (``oU``, ``p``, ``_``).

    Returns:
        ``rest``, ``mbp``, ``fv``, ``round``, ``wide`` or ``small``.
    """
    if not phoneme or phoneme.startswith("_"):
        return "rest"
    first = phoneme[0]
    if first in "pbm":
        return "mbp"
    if first in "fv":
        return "fv"
    if first in _ROUND or phoneme.startswith(_ROUND):
        return "round"
    if phoneme.startswith(_WIDE):
        return "wide"
    return "small"


def frame_visemes(phonemes: Sequence[PhonemeTiming], frames: int) -> list[str]:
    """Return the mouth shape of every frame: the phoneme sounding at the frame's middle.

    Args:
        phonemes: Phoneme timings in order (``_`` for silence).
        frames: Number of frames.

    Returns:
        One viseme name per frame.
    """
    out: list[str] = []
    i = 0
    current = "rest"
    events = sorted(phonemes, key=lambda p: p.start_ms)
    for k in range(frames):
        t = k * FRAME_MS + FRAME_MS // 2
        while i < len(events) and events[i].start_ms <= t:
            current = viseme_of(events[i].name)
            i += 1
        out.append(current)
    return out


def blink_frames(frames: int, seed: str) -> list[bool]:
    """Return, per frame, whether the eyes are closed: a 3-frame blink every 2.5-5.5 s.

    Args:
        frames: Number of frames.
        seed: Makes the schedule repeatable (the same input blinks the same way).

    Returns:
        One flag per frame.
    """
    rng = random.Random(seed)
    closed = [False] * frames
    k = int(rng.uniform(1.2, 3.0) * FPS)
    while k < frames:
        for j in range(k, min(frames, k + 3)):
            closed[j] = True
        k += int(rng.uniform(2.5, 5.5) * FPS)
    return closed


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"


def write_ffconcat(entries: Sequence[tuple[Path, int]], dest: Path) -> None:
    """Write an ffconcat list showing each image for a whole number of frames.

    Args:
        entries: (image, frames) in order; runs of the same image should be merged already.
        dest: The list file to write.
    """
    lines = ["ffconcat version 1.0"]
    for path, n in entries:
        lines.append(f"file {_quote(path)}")
        lines.append(f"duration {n * FRAME_MS / 1000:.3f}")
    if entries:  # the concat demuxer ignores the last entry's duration unless it is repeated
        lines.append(f"file {_quote(entries[-1][0])}")
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _runs(states: Sequence[object]) -> list[tuple[object, int]]:
    runs: list[tuple[object, int]] = []
    for s in states:
        if runs and runs[-1][0] == s:
            runs[-1] = (s, runs[-1][1] + 1)
        else:
            runs.append((s, 1))
    return runs


def write_head_track(
    heads: dict[tuple[str, bool], Path],
    phonemes: Sequence[PhonemeTiming],
    frames: int,
    seed: str,
    dest: Path,
) -> int:
    """Write the ffconcat list of head sprites (mouth shape and blinks) for every frame.

    Args:
        heads: Head sprite per (viseme, eyes closed).
        phonemes: Phoneme timings.
        frames: Number of frames of the video.
        seed: Seeds the blink schedule.
        dest: The list file to write.

    Returns:
        The number of entries written (sprite changes).
    """
    states = list(zip(frame_visemes(phonemes, frames), blink_frames(frames, seed), strict=True))
    entries = [(heads[state], n) for state, n in _runs(states)]  # type: ignore[index]
    write_ffconcat(entries, dest)
    return len(entries)


@dataclass(frozen=True)
class Cue:
    """One subtitle cue.

    Attributes:
        start_ms: When it appears.
        end_ms: When it goes.
        text: What it says.
    """

    start_ms: int
    end_ms: int
    text: str


def build_cues(
    words: Sequence[WordTiming], duration_ms: int, *, max_chars: int = 64, max_words: int = 12
) -> list[Cue]:
    """Group words into subtitle cues that never span two sentences.

    Args:
        words: Word timings (``sentence`` tells where sentences end).
        duration_ms: The video's duration (cues end inside it).
        max_chars: Longest cue text.
        max_words: Most words per cue.

    Returns:
        Cues in order, not overlapping.
    """
    groups: list[list[WordTiming]] = []
    for w in words:
        cur = groups[-1] if groups else None
        if (
            cur is None
            or cur[-1].sentence != w.sentence
            or len(cur) >= max_words
            or sum(len(x.display or x.text) + 1 for x in cur) + len(w.display or w.text) > max_chars
        ):
            groups.append([w])
        else:
            cur.append(w)
    cues: list[Cue] = []
    for i, g in enumerate(groups):
        start = g[0].offset_ms
        end = g[-1].offset_ms + g[-1].duration_ms
        nxt = groups[i + 1][0].offset_ms if i + 1 < len(groups) else duration_ms
        end = min(max(end, start + 800), nxt, duration_ms)
        text = "".join(x.display or f" {x.text}" for x in g).strip()
        if end > start and text:
            cues.append(Cue(start, end, text))
    return cues


def _ts(ms: int) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, milli = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{milli:03d}"


def write_vtt(cues: Sequence[Cue], dest: Path) -> None:
    """Write cues as a WebVTT file.

    Args:
        cues: The cues.
        dest: The ``.vtt`` file to write.
    """
    out = ["WEBVTT", ""]
    for i, c in enumerate(cues, 1):
        text = c.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        out += [str(i), f"{_ts(c.start_ms)} --> {_ts(c.end_ms)}", text, ""]
    dest.write_text("\n".join(out), encoding="utf-8")


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def write_cue_strips(
    cues: Sequence[Cue], frames: int, size: tuple[int, int], work: Path, dest: Path
) -> None:
    """Draw each cue as a transparent strip and list them, frame-exact, for ffmpeg to burn in.

    Args:
        cues: The cues.
        frames: Number of frames of the video.
        size: Strip size (video width, strip height).
        work: Directory for the strip images.
        dest: The ffconcat list to write.
    """
    w, h = size
    font_px = max(12, h // 3)
    font = ImageFont.load_default(font_px)
    blank = work / "cue_blank.png"
    Image.new("RGBA", size, (0, 0, 0, 0)).save(blank, compress_level=1)
    entries: list[tuple[Path, int]] = []
    at = 0
    for i, c in enumerate(cues):
        f0 = min(frames, round(c.start_ms / FRAME_MS))
        f1 = min(frames, max(f0 + 1, round(c.end_ms / FRAME_MS)))
        if f0 < at:
            f0 = at
        if f1 <= f0:
            continue
        if f0 > at:
            entries.append((blank, f0 - at))
        img = Image.new("RGBA", size, (0, 0, 0, 0))
        d = ImageDraw.Draw(img)
        lines = _wrap(c.text, font, int(w * 0.86))[-2:]
        line_h = int(font_px * 1.25)
        block_h = line_h * len(lines)
        y = max(0, (h - block_h) // 2)
        for line in lines:
            lw = int(font.getlength(line))
            x = (w - lw) // 2
            pad = font_px // 3
            d.rounded_rectangle(
                (x - pad, y - pad // 2, x + lw + pad, y + line_h + pad // 4),
                radius=pad,
                fill=(0, 0, 0, 160),
            )
            d.text((x, y), line, font=font, fill=(255, 255, 255, 255))
            y += line_h
        path = work / f"cue_{i:05d}.png"
        img.save(path, compress_level=1)
        entries.append((path, f1 - f0))
        at = f1
    if at < frames or not entries:
        entries.append((blank, max(1, frames - at)))
    write_ffconcat(entries, dest)


def boundary_json(items: Sequence[WordTiming | SentenceTiming], kind: str) -> str:
    """Return Azure's boundary file body: ``[{"Text", "AudioOffset", "Duration", ...}]``.

    Args:
        items: Word or sentence timings.
        kind: ``WordBoundary`` or ``SentenceBoundary``.

    Returns:
        The JSON text.
    """
    rows = [
        {
            "Text": it.text,
            "AudioOffset": it.offset_ms,
            "Duration": it.duration_ms,
            "BoundaryType": kind,
        }
        for it in items
    ]
    return json.dumps(rows, ensure_ascii=False, indent=1)


def gesture_expr(marks: Sequence[MarkTiming], amplitude: float, limit: int = 200) -> str:
    """Return an ffmpeg expression (of ``t``) nodding the head at each ``gesture.*`` bookmark.

    Args:
        marks: Bookmarks reached in the speech.
        amplitude: Nod depth in pixels.
        limit: At most this many nods (keeps the expression short).

    Returns:
        A sum of terms (``0`` when there are no gestures), for an overlay ``y`` expression.
    """
    terms: list[str] = []
    for m in marks:
        if not m.name.lower().startswith("gesture."):
            continue
        a = m.offset_ms / 1000.0
        terms.append(f"{amplitude:.1f}*between(t,{a:.3f},{a + 0.8:.3f})*sin(PI*(t-{a:.3f})/0.8)")
        if len(terms) >= limit:
            break
    return "+".join(terms) if terms else "0"
