"""How ``avatarpipe run`` shows progress: a live display on a TTY, plain lines elsewhere.

The pipeline reports through :mod:`avatarpipe.progress`; :class:`Display` subscribes to it for
the duration of a run, and :func:`quiet_prefect_console` keeps Prefect's own console logs out of
the way (run logs still reach the Prefect API).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
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
_JOB_STAGES = ("submitted", "queued", "rendering", "rendered")  # events whose detail is a job id
_IN_FLIGHT = ("submitted", "queued", "rendering")


class Display:
    """Live progress on a TTY, plain lines elsewhere.

    Args:
        live: Show progress bars (a TTY) instead of one line per milestone.
    """

    def __init__(self, live: bool) -> None:
        self.live = live
        self.counts: Counter[str] = Counter()
        self.seen: set[tuple[str, str]] = set()
        self.total = 0
        self.started = time.monotonic()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self.jobs: dict[str, str] = {}  # job id -> its last stage

    def __call__(self, event: progress.ProgressEvent) -> None:
        """Show one progress event (each stage and item once)."""
        if event.stage in _JOB_STAGES and event.detail:
            self.jobs[event.detail] = event.stage
        if event.stage == "planned" and event.total:
            self.total = event.total
        if event.stage == "info":  # a notice (e.g. a wait on the request budget): every one shows
            self._line(event)
            return
        if (event.stage, event.item) in self.seen:
            return
        self.seen.add((event.stage, event.item))
        self.counts[event.stage] += 1
        if self._progress is not None and event.stage in self._tasks:
            self._progress.update(
                self._tasks[event.stage],
                completed=self.counts[event.stage],
                total=self.total or None,
            )
        elif not self.live and event.stage in (
            "planned",
            "failed",
            "published",
            "postprocessed",
        ):
            self._line(event)

    def _line(self, event: progress.ProgressEvent) -> None:
        """Print one line (above the bars on a TTY)."""
        elapsed = time.monotonic() - self.started
        item = f"{event.item} " if event.item else ""
        line = f"[{elapsed:6.1f}s] {event.stage}: {item}{event.detail}".rstrip()
        console.print(escape(line), soft_wrap=True)

    def interrupted(self) -> str:
        """The one line printed when the run is interrupted: the jobs in flight, how to resume."""
        flight = sorted(j for j, stage in self.jobs.items() if stage in _IN_FLIGHT)
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
        """Listen to the pipeline's progress (and draw the bars on a TTY) while inside."""
        progress.subscribe(self)
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
                    TimeElapsedColumn(),
                    console=console,
                    transient=False,
                ) as bar:
                    self._progress = bar
                    for stage in ("submitted", "rendering", "downloaded", "postprocessed"):
                        self._tasks[stage] = bar.add_task(
                            stage.replace("postprocessed", "post-processed"), total=None
                        )
                    yield
            else:
                yield
        finally:
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
