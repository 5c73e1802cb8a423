"""What is running and what it cost: recent runs (their manifests) beside the service's jobs.

:func:`recent_runs` reads the published run folders (``<output>/<slug>/<run-id>/manifest.json``);
:func:`status_report` puts them together with the service's jobs
(:func:`avatarpipe.resource.jobs.list_jobs`) and the result store: each run's jobs with their
state, age, billed seconds and cost, the jobs in flight and the jobs that failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from avatarpipe.resource.jobs import JobRow

__all__ = ["RunRecord", "StatusReport", "recent_runs", "status_report"]


@dataclass(frozen=True)
class RunRecord:
    """One published run, from its manifest.

    Attributes:
        slug: The script's slug.
        run_id: The run id (the folder's name).
        folder: The run folder.
        finished: When the folder was published (ISO 8601).
        age_s: Seconds since then.
        job_ids: The jobs that rendered its scenes, in scene order.
        billed_s: Avatar seconds billed for its jobs.
        cost_usd: Their cost (at the prices of the run), when recorded.
        estimated_s: The estimate made before the run, when recorded.
        estimated_cost_usd: Its cost, when recorded.
    """

    slug: str
    run_id: str
    folder: str
    finished: str
    age_s: float
    job_ids: list[str]
    billed_s: float
    cost_usd: float | None
    estimated_s: float | None
    estimated_cost_usd: float | None


def _record(path: Path, now: datetime) -> RunRecord | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        mtime = path.stat().st_mtime
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("avatarpipe."):
        return None
    billing = data.get("billing") or {}
    jobs: list[str] = []
    for scene in data.get("scenes") or []:
        job_id = scene.get("job_id") if isinstance(scene, dict) else None
        if isinstance(job_id, str) and job_id not in jobs:
            jobs.append(job_id)
    finished = datetime.fromtimestamp(mtime, UTC)
    return RunRecord(
        slug=str(data.get("slug", path.parent.parent.name)),
        run_id=str(data.get("run_id", path.parent.name)),
        folder=str(path.parent),
        finished=finished.isoformat(),
        age_s=round((now - finished).total_seconds(), 1),
        job_ids=jobs,
        billed_s=float(billing.get("avatar_seconds") or 0),
        cost_usd=billing.get("cost_usd"),
        estimated_s=billing.get("estimated_seconds"),
        estimated_cost_usd=billing.get("estimated_cost_usd"),
    )


def recent_runs(
    output_dir: Path, *, limit: int = 10, now: datetime | None = None
) -> list[RunRecord]:
    """The newest published runs under ``output_dir``, newest first.

    Args:
        output_dir: The output root.
        limit: At most this many runs.
        now: The current time (default: now, UTC).

    Returns:
        The runs whose manifest could be read (staged and hidden folders are skipped).
    """
    now = now or datetime.now(UTC)
    paths = [
        p
        for p in Path(output_dir).glob("*/*/manifest.json")
        if not p.parent.name.startswith(".") and not p.parent.parent.name.startswith(".")
    ]
    paths.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    records = (_record(p, now) for p in paths[: max(0, limit)])
    return [r for r in records if r is not None]


@dataclass
class StatusReport:
    """The runs and the service's jobs, together.

    Attributes:
        runs: Recent runs, newest first.
        jobs: The service's jobs by id (empty when the service was not asked).
        stored: How many jobs' videos are in the result store.
        endpoint: The service asked, or ``None``.
    """

    runs: list[RunRecord]
    jobs: dict[str, JobRow] = field(default_factory=dict)
    stored: int = 0
    endpoint: str | None = None

    @property
    def in_flight(self) -> list[JobRow]:
        """Jobs not started or running."""
        return [j for j in self.jobs.values() if j.status in ("NotStarted", "Running")]

    @property
    def failed(self) -> list[JobRow]:
        """Jobs that failed."""
        return [j for j in self.jobs.values() if j.status == "Failed"]

    def run_jobs(self, run: RunRecord) -> list[dict[str, Any]]:
        """A run's jobs with their state on the service (``gone``: deleted or expired)."""
        rows = []
        for job_id in run.job_ids:
            job = self.jobs.get(job_id)
            rows.append(
                job.to_json()
                if job is not None
                else {"job_id": job_id, "status": "gone" if self.endpoint else "unknown"}
            )
        return rows

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe form (``avatarpipe status --json``)."""
        return {
            "endpoint": self.endpoint,
            "runs": [{**run.__dict__, "jobs": self.run_jobs(run)} for run in self.runs],
            "in_flight": [j.to_json() for j in self.in_flight],
            "failed": [j.to_json() for j in self.failed],
            "service_jobs": len(self.jobs),
            "billed_s": sum(j.billed_s or 0 for j in self.jobs.values()),
            "cost_usd": round(sum(j.cost_usd or 0 for j in self.jobs.values()), 4),
            "stored_jobs": self.stored,
        }


def status_report(
    runs: list[RunRecord], jobs: list[JobRow], *, stored: int, endpoint: str | None
) -> StatusReport:
    """Put the runs and the service's jobs together.

    Args:
        runs: Recent runs (see :func:`recent_runs`).
        jobs: The service's jobs (empty when it was not asked).
        stored: How many jobs' videos are in the result store.
        endpoint: The service asked, or ``None``.

    Returns:
        The report.
    """
    return StatusReport(runs, {j.job_id: j for j in jobs}, stored, endpoint)
