"""A tiny in-process progress hub: the pipeline reports, whoever listens (the CLI) shows it.

The library and the flows call :func:`report`; the CLI subscribes a callback that drives its
display. Nothing here knows about Prefect or rich, and with no subscriber a report is a no-op,
so long-running work stays cheap to observe.

:class:`Tally` turns the events into the counts a person reads, each in its own unit, the same
whether a job was created now, re-attached to, or reused from the result store:

* ``planned``: the videos (one per output file) from the scripts, the clips (one per scene,
  what the service renders) and the jobs they are packed into;
* ``submitted``: jobs accounted for (new, re-attached, reused from the result store);
* ``rendering``: jobs done (or failed) and still running;
* ``downloaded``: clips verified on disk (fetched, or verified in the result store);
* ``post-processed``: videos made;
* ``published``: run folders published.

The events, by who reports them:

* ``videos`` (the ``script-to-video`` flow): ``total`` videos, ``scripts`` (data);
* ``planned`` (:mod:`avatarpipe.batch.run`, once per synthesis run): ``total`` clips, ``jobs``;
* ``submitted`` / ``queued`` / ``rendering`` / ``rendered`` / ``reused`` / ``failed``: one per
  clip, with the job's id in ``job`` (``submitted`` has ``created`` 1 or 0 in ``data``);
* ``downloaded``: one per clip; ``postprocessed``: one per video; ``published``: one per folder;
* ``info``: a notice shown as it is (a wait on the request budget, a repaired file).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "STAGES",
    "ProgressEvent",
    "StageCount",
    "Tally",
    "elapsed_text",
    "report",
    "subscribe",
    "unsubscribe",
]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of progress.

    Attributes:
        stage: ``videos``, ``planned``, ``submitted``, ``queued``, ``rendering``, ``rendered``,
            ``reused``, ``failed``, ``downloaded``, ``postprocessed``, ``published`` or ``info``.
        item: The clip or output concerned (``scene-001``), or ``""`` for the whole run.
        detail: A short human-readable detail.
        total: How many items the stage covers, when known.
        data: Extra numbers (sizes, durations, counts).
        job: The batch job concerned, for the job stages.
    """

    stage: str
    item: str = ""
    detail: str = ""
    total: int | None = None
    data: dict[str, float] = field(default_factory=dict)
    job: str = ""


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
    """Report progress; listeners' errors never break the pipeline.

    Args:
        stage: What happened (see :class:`ProgressEvent`).
        item: The clip or output concerned.
        detail: A short human-readable detail.
        **kwargs: ``total`` (int), ``job`` (a job id), and numbers kept in ``data``.
    """
    total = kwargs.pop("total", None)
    job = kwargs.pop("job", "")
    data = {k: float(v) for k, v in kwargs.items() if isinstance(v, int | float)}
    event = ProgressEvent(
        stage, item, detail, total if isinstance(total, int) else None, data, str(job or "")
    )
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        with contextlib.suppress(Exception):  # a display must never fail a run
            listener(event)


# ------------------------------------------------------------------ counting

STAGES = ("submitted", "rendering", "downloaded", "post-processed", "published")
"""The counted stages, in the order a run goes through them (after ``planned``)."""

_JOB_STATE = {
    "submitted": "waiting",
    "queued": "waiting",
    "rendering": "running",
    "rendered": "done",
    "reused": "done",
    "failed": "failed",
}
_IN_FLIGHT = ("waiting", "running")


def elapsed_text(seconds: float) -> str:
    """``12s``, ``4m`` or ``1h 05m``: how long, as a person says it."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = int(seconds // 60)
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


@dataclass(frozen=True)
class StageCount:
    """Where one stage stands.

    Attributes:
        stage: One of :data:`STAGES`.
        done: Items finished.
        total: Items the stage covers (``None`` while unknown).
        unit: What is counted (``job``, ``clip``, ``video``, ``run folder``).
        note: More, e.g. ``2 running`` or ``1 new, 2 reused from the result store``.
    """

    stage: str
    done: int
    total: int | None
    unit: str
    note: str = ""

    @property
    def complete(self) -> bool:
        """Every item of a known, non-empty total is finished."""
        return self.total is not None and self.total > 0 and self.done >= self.total

    @property
    def started(self) -> bool:
        """Something of the stage happened."""
        return self.done > 0 or bool(self.note)

    def text(self) -> str:
        """Like ``rendering: 3/5 jobs done, 2 running``."""
        total = "?" if self.total is None else str(self.total)
        unit = self.unit if self.total == 1 else f"{self.unit}s"
        verb = " done" if self.stage == "rendering" else ""
        note = f", {self.note}" if self.note else ""
        return f"{self.stage}: {self.done}/{total} {unit}{verb}{note}"


@dataclass
class Tally:
    """The run's counts, from its events (thread-safe; feed it every event).

    Attributes:
        videos: Videos the run makes (``None`` until the flow says).
        scripts: Scripts (rows) the run makes videos of.
        clips: Clips planned (summed over the synthesis runs).
        jobs: Jobs planned (summed over the synthesis runs).
        clip_job: Each clip's current job (a resubmission replaces the failed job).
        job_state: Each job's state: ``waiting``, ``running``, ``done`` or ``failed``.
        job_origin: Each job's origin: ``new``, ``re-attached``, ``reused`` or ``failed`` (refused,
            or failed for good in an earlier run).
        downloaded: The clips verified on disk.
        postprocessed: The videos made.
        published: The run folders published.
        planned_seen: Whether the synthesis has been planned.
    """

    videos: int | None = None
    scripts: int | None = None
    clips: int = 0
    jobs: int = 0
    clip_job: dict[str, str] = field(default_factory=dict)
    job_state: dict[str, str] = field(default_factory=dict)
    job_origin: dict[str, str] = field(default_factory=dict)
    downloaded: set[str] = field(default_factory=set)
    postprocessed: set[str] = field(default_factory=set)
    published: set[str] = field(default_factory=set)
    planned_seen: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, event: ProgressEvent) -> None:
        """Count one event."""
        with self._lock:
            self._add(event)

    def _add(self, event: ProgressEvent) -> None:
        stage = event.stage
        if stage == "videos":
            self.videos = event.total
            if "scripts" in event.data:
                self.scripts = int(event.data["scripts"])
        elif stage == "planned":
            self.planned_seen = True
            self.clips += event.total or 0
            self.jobs += int(event.data.get("jobs", 0))
        elif stage in _JOB_STATE:
            job = event.job or self.clip_job.get(event.item, "")
            if not job:
                job = f"?{event.item}"  # a failure before any job: counted on its own
            if event.item:
                self.clip_job[event.item] = job
            state = self.job_state.get(job)
            if state in ("done", "failed") and _JOB_STATE[stage] in _IN_FLIGHT:
                return  # a late, out-of-order status never undoes a final one
            self.job_state[job] = _JOB_STATE[stage]
            if stage == "submitted" and job not in self.job_origin:
                created = event.data.get("created", 1.0)
                self.job_origin[job] = "new" if created else "re-attached"
            elif stage == "reused":
                self.job_origin[job] = "reused"
            elif stage == "failed" and job not in self.job_origin:
                self.job_origin[job] = "failed"  # refused, or failed for good in an earlier run
        elif stage == "downloaded":
            self.downloaded.add(event.item)
        elif stage == "postprocessed":
            self.postprocessed.add(event.item)
        elif stage == "published":
            self.published.add(event.item)

    def current_jobs(self) -> set[str]:
        """The jobs the clips are on now (replaced ones left out)."""
        return set(self.clip_job.values())

    def in_flight(self) -> list[str]:
        """The jobs still waiting or rendering on the service, sorted."""
        with self._lock:
            return sorted(j for j in self.current_jobs() if self.job_state.get(j) in _IN_FLIGHT)

    def planned_text(self) -> str:
        """Like ``planned: 3 videos from 3 scripts; 5 clips in 2 jobs``."""
        with self._lock:
            parts = []
            if self.videos is not None:
                videos = _plural(self.videos, "video")
                if self.scripts is not None:
                    videos += f" from {_plural(self.scripts, 'script')}"
                parts.append(videos)
            if self.planned_seen:
                parts.append(f"{_plural(self.clips, 'clip')} in {_plural(self.jobs, 'job')}")
            return "planned: " + "; ".join(parts)

    def stages(self) -> list[StageCount]:
        """Every counted stage, in order."""
        with self._lock:
            jobs = self.current_jobs()
            states = [self.job_state.get(j, "") for j in jobs]
            origins = [self.job_origin.get(j, "") for j in jobs]
            jobs_total = self.jobs if self.planned_seen else None
            running = states.count("running")
            queued = states.count("waiting")
            failed = sum(s == "failed" for s in states)
            finished = sum(s in ("done", "failed") for s in states)
            origin = ", ".join(
                f"{origins.count(name)} {label}"
                for name, label in (
                    ("new", "new"),
                    ("re-attached", "re-attached"),
                    ("reused", "reused from the result store"),
                    ("failed", "not rendered (refused or failed before)"),
                )
                if origins.count(name)
            )
            rendering = ", ".join(
                part
                for count, part in (
                    (running, f"{running} running"),
                    (queued, f"{queued} queued"),
                    (failed, f"{failed} failed"),
                )
                if count
            )
            clips_total = self.clips if self.planned_seen else None
            return [
                StageCount(
                    "submitted", len(origins) - origins.count(""), jobs_total, "job", origin
                ),
                StageCount("rendering", finished, jobs_total, "job", rendering),
                StageCount("downloaded", len(self.downloaded), clips_total, "clip"),
                StageCount("post-processed", len(self.postprocessed), self.videos, "video"),
                StageCount("published", len(self.published), self.scripts, "run folder"),
            ]

    def current(self) -> StageCount:
        """The first stage not complete (the last one when all are)."""
        stages = self.stages()
        return next((s for s in stages if not s.complete), stages[-1])
