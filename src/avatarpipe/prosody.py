"""SSML prosody as Azure reads it: ``<prosody rate|pitch|volume>`` and ``<break>`` lengths.

One home for these rules, read by the emulator's speech engine (what it renders) and by the
estimate (what a run will bill), so both agree on what a script's SSML asks for.
"""

from __future__ import annotations

import math
import re

__all__ = ["MAX_BREAK_MS", "parse_break_ms", "parse_pitch", "parse_rate", "parse_volume"]

MAX_BREAK_MS = 20_000
"""The longest ``<break>`` Azure honours."""

_BREAK_STRENGTH_MS = {
    "none": 0,
    "x-weak": 250,
    "weak": 500,
    "medium": 750,
    "strong": 1000,
    "x-strong": 1250,
}
_RATE_WORDS = {
    "x-slow": 0.5,
    "slow": 0.64,
    "medium": 1.0,
    "default": 1.0,
    "fast": 1.55,
    "x-fast": 2.0,
}

_PITCH_WORDS = {
    "x-low": 0.55,
    "low": 0.8,
    "medium": 1.0,
    "default": 1.0,
    "high": 1.2,
    "x-high": 1.45,
}
_VOLUME_WORDS = {
    "silent": 0.0,
    "x-soft": 20.0,
    "soft": 40.0,
    "medium": 60.0,
    "loud": 80.0,
    "x-loud": 100.0,
    "default": 100.0,
}
_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def parse_rate(value: str | None, base: float = 1.0) -> float:
    """Parse an Azure prosody ``rate`` into a multiplier.

    Accepts ``x-slow`` .. ``x-fast``, ``default``, a relative percentage (``+30%``), or a bare
    number that multiplies the rate (``1.2``). Invalid values are ignored, as Azure does.

    Args:
        value: The attribute value, or ``None``.
        base: The multiplier in force around this element.

    Returns:
        The new multiplier, clamped to 0.5-3.0.

    Raises:
        Nothing: invalid values fall back to ``base``.
    """
    if value is None:
        return base
    v = value.strip().lower()
    if v in _RATE_WORDS:
        return _clamp(base * _RATE_WORDS[v], 0.5, 3.0)
    m = re.fullmatch(rf"({_NUM})%", v)
    if m:
        return _clamp(base * (1.0 + float(m[1]) / 100.0), 0.5, 3.0)
    m = re.fullmatch(_NUM, v)
    if m:
        number = float(v)
        if number > 0:
            return _clamp(base * number, 0.5, 3.0)
    return base


def parse_break_ms(time: str | None, strength: str | None) -> int:
    """Return the length of a ``<break>`` in milliseconds.

    Args:
        time: The ``time`` attribute (``500ms``, ``2s``), when given; it wins over ``strength``.
        strength: The ``strength`` attribute, when given.

    Returns:
        Milliseconds, 0-20000; ``medium`` (750 ms) when neither attribute is usable.

    Raises:
        Nothing: invalid values fall back to the default strength.
    """
    if time is not None:
        m = re.fullmatch(rf"\s*({_NUM})\s*(ms|s)\s*", time.lower())
        if m:
            ms = float(m[1]) * (1000.0 if m[2] == "s" else 1.0)
            return int(_clamp(ms, 0.0, MAX_BREAK_MS))
    if strength is not None and strength.strip().lower() in _BREAK_STRENGTH_MS:
        return _BREAK_STRENGTH_MS[strength.strip().lower()]
    return _BREAK_STRENGTH_MS["medium"]


def parse_pitch(value: str | None, base: float = 1.0) -> float:
    """Parse an Azure prosody ``pitch`` into a multiplier of the voice's pitch.

    Accepts ``x-low`` .. ``x-high``, ``default``, ``+10%``, ``-2st`` (semitones), ``+50Hz``
    (relative hertz) and ``300Hz`` (absolute, taken against a 200 Hz reference). Invalid values
    are ignored.

    Args:
        value: The attribute value, or ``None``.
        base: The multiplier in force around this element.

    Returns:
        The new multiplier, clamped to 0.1-2.0.

    Raises:
        Nothing: invalid values fall back to ``base``.
    """
    if value is None:
        return base
    v = value.strip().lower()
    ref_hz = 200.0
    if v in _PITCH_WORDS:
        return _clamp(base * _PITCH_WORDS[v], 0.1, 2.0)
    m = re.fullmatch(rf"({_NUM})%", v)
    if m:
        return _clamp(base * (1.0 + float(m[1]) / 100.0), 0.1, 2.0)
    m = re.fullmatch(rf"({_NUM})st", v)
    if m:
        return _clamp(base * math.pow(2.0, float(m[1]) / 12.0), 0.1, 2.0)
    m = re.fullmatch(rf"({_NUM})hz", v)
    if m:
        hz = float(m[1])
        if m[1].startswith(("+", "-")):
            return _clamp(base * (1.0 + hz / ref_hz), 0.1, 2.0)
        if hz > 0:
            return _clamp(hz / ref_hz, 0.1, 2.0)
    return base


def parse_volume(value: str | None, base: float = 100.0) -> float:
    """Parse an Azure prosody ``volume`` into Azure's absolute 0-100 scale.

    Accepts ``silent`` .. ``x-loud``, ``default``, an absolute number (``50``), a relative number
    (``+10``, ``-20``), a percentage (``-50%``) or decibels (``-6dB``). Invalid values are ignored.

    Args:
        value: The attribute value, or ``None``.
        base: The volume in force around this element.

    Returns:
        The new volume, clamped to 0-200 (eSpeak can amplify up to twice the default).

    Raises:
        Nothing: invalid values fall back to ``base``.
    """
    if value is None:
        return base
    v = value.strip().lower()
    if v in _VOLUME_WORDS:
        return _VOLUME_WORDS[v]
    m = re.fullmatch(rf"({_NUM})%", v)
    if m:
        return _clamp(base * (1.0 + float(m[1]) / 100.0), 0.0, 200.0)
    m = re.fullmatch(rf"({_NUM})db", v)
    if m:
        return _clamp(base * math.pow(10.0, float(m[1]) / 20.0), 0.0, 200.0)
    m = re.fullmatch(_NUM, v)
    if m:
        if v.startswith(("+", "-")):
            return _clamp(base + float(v), 0.0, 200.0)
        return _clamp(float(v), 0.0, 200.0)
    return base
