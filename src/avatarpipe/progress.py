"""A tiny in-process progress hub: the pipeline reports, whoever listens (the CLI) shows it.

The library and the flows call :func:`report`; the CLI subscribes a callback that drives its
live display. Nothing here knows about Prefect or rich, and with no subscriber a report is a
no-op, so long-running work stays cheap to observe.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["ProgressEvent", "report", "subscribe", "unsubscribe"]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of progress.

    Attributes:
        stage: ``planned``, ``submitted``, ``rendering``, ``rendered``, ``failed``,
            ``downloaded``, ``postprocessed``, ``published`` or ``info``.
        item: The scene or output concerned (``scene-001``), or ``""`` for the whole run.
        detail: A short human-readable detail.
        total: How many items the stage covers, when known.
        data: Extra numbers (sizes, durations).
    """

    stage: str
    item: str = ""
    detail: str = ""
    total: int | None = None
    data: dict[str, float] = field(default_factory=dict)


Listener = Callable[[ProgressEvent], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def subscribe(listener: Listener) -> None:
    """Start sending every :class:`ProgressEvent` to ``listener`` (from any thread)."""
    with _lock:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    """Stop sending events to ``listener``."""
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def report(stage: str, item: str = "", detail: str = "", **kwargs: object) -> None:
    """Report progress; listeners' errors never break the pipeline."""
    total = kwargs.pop("total", None)
    data = {k: float(v) for k, v in kwargs.items() if isinstance(v, int | float)}
    event = ProgressEvent(stage, item, detail, total if isinstance(total, int) else None, data)
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        with contextlib.suppress(Exception):  # a display must never fail a run
            listener(event)
