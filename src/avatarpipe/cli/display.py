"""How ``avatarpipe run`` shows progress: a live display on a TTY, plain lines elsewhere.

The pipeline reports through :mod:`avatarpipe.progress`; :class:`Display` subscribes to it for
the duration of a run, and :func:`quiet_prefect_console` keeps Prefect's own console logs out of
the way (run logs still reach the Prefect API).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape

from avatarpipe import progress

__all__ = ["Display", "console", "quiet_prefect_console", "stdout"]

console = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)

_USER_CONSOLE_LEVEL = os.environ.get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL")
HEARTBEAT_S = 60.0
"""Longest silence of the plain display while a run goes on: the current stage is repeated."""


class Display:
    """Live progress on a TTY, plain lines elsewhere, both from one :class:`~progress.Tally`.

    Plain lines: the plan, each stage as it starts and as it completes (its counts in its own
    unit: jobs, clips, videos, run folders), every failure and notice, and the current stage at
    least every ``heartbeat_s`` while the run waits::

        planned: 1 video from 1 script; 3 clips in 3 jobs
        rendering: 1/3 jobs done, 2 running, 4m elapsed

    Args:
        live: Show progress bars (a TTY) instead of lines.
        heartbeat_s: Longest silence of the plain lines while running.
    """

    def __init__(self, live: bool, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.live = live
        self.heartbeat_s = heartbeat_s
        self.tally = progress.Tally()
        self.started = time.monotonic()
        self.last_line = self.started
        self._printed: dict[str, str] = {}
        self._failed: set[str] = set()
        self._lock = threading.RLock()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __call__(self, event: progress.ProgressEvent) -> None:
        """Count one progress event and show what changed."""
        with self._lock:
            self.tally.add(event)
            if event.stage == "info":  # a notice (e.g. a wait on the request budget): every one
                self._print(f"info: {event.item + ' ' if event.item else ''}{event.detail}")
            elif event.stage == "failed" and event.item not in self._failed:
                self._failed.add(event.item)
                self._print(f"failed: {event.item} {event.detail}")
            if event.stage in ("videos", "planned"):
                self._show_plan()
            if self._progress is not None:
                self._update_bars()
            elif not self.live:
                self._show_stages()

    def _elapsed(self) -> str:
        return progress.elapsed_text(time.monotonic() - self.started) + " elapsed"

    def _print(self, line: str) -> None:
        """Print one line (above the bars on a TTY)."""
        self.last_line = time.monotonic()
        console.print(escape(line), soft_wrap=True)

    def _show_plan(self) -> None:
        line = self.tally.planned_text()
        if self._printed.get("planned") != line:
            self._printed["planned"] = line
            self._print(line)

    def _show_stages(self) -> None:
        """Print each stage when it starts (being current) and when it completes."""
        if not self.tally.planned_seen:
            return
        stages = self.tally.stages()
        current = next((s for s in stages if not s.complete), None)
        for stage in stages:
            text = stage.text()
            shown = self._printed.get(stage.stage)
            starts = stage is current and shown is None
            if starts or (stage.complete and shown != text):
                self._printed[stage.stage] = text
                self._print(f"{text}, {self._elapsed()}")
            if stage is current:
                break

    def heartbeat(self) -> None:
        """Repeat the current stage when nothing was printed for ``heartbeat_s``."""
        with self._lock:
            if time.monotonic() - self.last_line < self.heartbeat_s:
                return
            if self.tally.planned_seen:
                self._print(f"{self.tally.current().text()}, {self._elapsed()}")
            else:
                self._print(f"{self.tally.planned_text()}, preparing, {self._elapsed()}")

    def _update_bars(self) -> None:
        for stage in self.tally.stages():
            task = self._tasks.get(stage.stage)
            if task is not None:
                unit = stage.unit if stage.total == 1 else f"{stage.unit}s"
                self._progress.update(
                    task, completed=stage.done, total=stage.total, unit=unit, note=stage.note
                )

    def interrupted(self) -> str:
        """The one line printed when the run is interrupted: the jobs in flight, how to resume."""
        flight = self.tally.in_flight()
        if not flight:
            return "interrupted: no job in flight; rerun the same command to carry on"
        shown = ", ".join(flight[:5]) + (", ..." if len(flight) > 5 else "")
        jobs = "1 job" if len(flight) == 1 else f"{len(flight)} jobs"
        return (
            f"interrupted: {jobs} still rendering on the service ({shown}); "
            "rerun the same command to pick them up"
        )

    @contextmanager
    def running(self) -> Iterator[None]:
        """Listen to the pipeline's progress (bars on a TTY, else lines and a heartbeat)."""
        progress.subscribe(self)
        stop = threading.Event()
        beat: threading.Thread | None = None
        try:
            if self.live:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )

                with Progress(
                    TextColumn("{task.description:>14}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[unit]} {task.fields[note]}"),
                    TimeElapsedColumn(),
                    console=console,
                    transient=False,
                ) as bar:
                    with self._lock:
                        self._progress = bar
                        for stage in progress.STAGES:
                            self._tasks[stage] = bar.add_task(stage, total=None, unit="", note="")
                        self._update_bars()
                    yield
            else:

                def beat_loop() -> None:
                    while not stop.wait(min(self.heartbeat_s, 5.0)):
                        self.heartbeat()

                beat = threading.Thread(target=beat_loop, name="progress-heartbeat", daemon=True)
                beat.start()
                yield
        finally:
            stop.set()
            if beat is not None:
                beat.join(timeout=5)
            progress.unsubscribe(self)
            self._progress = None


@contextmanager
def quiet_prefect_console() -> Iterator[None]:
    """Keep Prefect's console handler at CRITICAL during a run.

    The CLI shows its own progress and one error line; run logs still reach the Prefect API.
    """
    if _USER_CONSOLE_LEVEL:
        yield  # the user asked for Prefect's own console logs
        return
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [
        logging.getLogger(),
        *(logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)),
    ]
    changed = [
        (handler, handler.level)
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, PrefectConsoleHandler)
    ]
    for handler, _level in changed:
        handler.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for handler, level in changed:
            handler.setLevel(level)
