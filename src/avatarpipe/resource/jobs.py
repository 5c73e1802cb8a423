"""Operations on the service's batch avatar jobs: list, show, cancel, delete, prune.

The batch avatar API (``2024-08-01``) offers list (paged, 100 a page), get and delete; it has
no cancel and no update. Cancelling a job that has not finished is therefore a delete: the
service stops it and drops whatever it rendered.

Deleting also deletes the job's results on the service, so :func:`delete_jobs` and
:func:`prune_jobs` keep every succeeded job whose videos are not verified locally (not in the
result store) unless forced, and say for each job what they did and why.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from avatarpipe.batch.estimate import Prices
from avatarpipe.errors import ConfigError, InvalidInputError
from avatarpipe.speech.models import BatchSynthesis, Status

__all__ = [
    "FINAL",
    "JobAction",
    "JobRow",
    "JobsApi",
    "cancel_job",
    "delete_jobs",
    "job_row",
    "list_jobs",
    "parse_age",
    "prune_jobs",
]

FINAL = (Status.SUCCEEDED, Status.FAILED)
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class JobsApi(Protocol):
    """The part of :class:`avatarpipe.speech.batch_avatar.BatchAvatarClient` used here."""

    def get_synthesis(self, job_id: str) -> BatchSynthesis: ...  # noqa: D102

    def list_syntheses(  # noqa: D102
        self, *, skip: int = 0, maxpagesize: int = 100
    ) -> Iterable[BatchSynthesis]: ...

    def delete_synthesis(self, job_id: str) -> None: ...  # noqa: D102


@dataclass(frozen=True)
class JobRow:
    """One job as the service reports it, priced.

    Attributes:
        job_id: The job id.
        status: ``NotStarted``, ``Running``, ``Succeeded`` or ``Failed``.
        created: When it was created (ISO 8601), if known.
        age_s: Seconds since it was created.
        billed_s: ``talkingAvatarDurationSeconds`` (finished jobs).
        video_s: The video's duration in seconds (finished jobs).
        cost_usd: ``billed_s`` at the price per avatar minute.
        customized: A custom avatar.
        stored: Its videos are verified locally (in the result store).
        description: The job's description.
        error: ``code: message`` of a failed job.
    """

    job_id: str
    status: str
    created: str | None
    age_s: float | None
    billed_s: int | None
    video_s: float | None
    cost_usd: float | None
    customized: bool
    stored: bool
    description: str | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe form."""
        return asdict(self)


@dataclass(frozen=True)
class JobAction:
    """What a delete, cancel or prune did with one job.

    Attributes:
        job_id: The job.
        status: Its status before.
        action: ``deleted``, ``cancelled`` or ``kept``.
        reason: Why (for a kept job, how to delete it anyway).
    """

    job_id: str
    status: str
    action: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe form."""
        return asdict(self)


def parse_age(text: str) -> float:
    """Parse an age like ``7d``, ``12h``, ``30m``, ``90s`` or ``2w`` into seconds.

    Raises:
        ConfigError: The text is not a number followed by s, m, h, d or w.
    """
    m = _AGE.match(text)
    if not m:
        raise ConfigError(f"--older-than: {text!r} is not an age like 7d, 12h, 30m or 2w")
    return float(m[1]) * _UNIT_S[m[2]]


def job_row(
    view: BatchSynthesis, *, prices: Prices, stored: Collection[str], now: datetime | None = None
) -> JobRow:
    """Price and describe one job.

    Args:
        view: The service's job.
        prices: The price table.
        stored: Job ids whose videos are in the result store.
        now: The current time (default: now, UTC).

    Returns:
        The row.
    """
    now = now or datetime.now(UTC)
    props = view.properties
    billing = props.billing_details if props else None
    billed = billing.talking_avatar_duration_seconds if billing else None
    customized = bool(view.avatar_config.customized)
    created = view.created_date_time
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    err = props.error if props else None
    duration = props.duration_in_milliseconds if props else None
    return JobRow(
        job_id=view.id or "?",
        status=view.status.value if view.status else "?",
        created=created.isoformat() if created else None,
        age_s=round((now - created).total_seconds(), 1) if created else None,
        billed_s=billed,
        video_s=duration / 1000 if duration is not None else None,
        cost_usd=round(billed / 60 * prices.per_minute(customized), 4)
        if billed is not None
        else None,
        customized=customized,
        stored=(view.id or "") in stored,
        description=view.description,
        error=f"{err.code}: {err.message}" if err and (err.code or err.message) else None,
    )


def list_jobs(
    api: JobsApi, *, prices: Prices, stored: Collection[str], now: datetime | None = None
) -> list[JobRow]:
    """Every job of the resource (one request per page of 100), newest first.

    Raises:
        ServiceError: The service failed after retries.
    """
    rows = [job_row(v, prices=prices, stored=stored, now=now) for v in api.list_syntheses()]
    return sorted(rows, key=lambda r: r.created or "", reverse=True)


def cancel_job(api: JobsApi, job_id: str) -> JobAction:
    """Cancel a job that has not finished (the API has no cancel: a delete stops it).

    Raises:
        NotFoundError: No such job.
        InvalidInputError: The job has finished (delete it with ``jobs delete``).
        ServiceError: The service failed after retries.
    """
    view = api.get_synthesis(job_id)
    status = view.status or Status.NOT_STARTED
    if status in FINAL:
        raise InvalidInputError(
            f"job {job_id} is {status.value}: there is nothing to cancel; "
            f"`avatarpipe jobs delete {job_id}` removes it and its results"
        )
    api.delete_synthesis(job_id)
    return JobAction(job_id, status.value, "cancelled", "deleted before it finished")


def _verdict(view: BatchSynthesis, stored: Collection[str], force: bool) -> str | None:
    """Why a job must be kept (``None``: it may be deleted)."""
    status = view.status or Status.NOT_STARTED
    if status not in FINAL:
        return f"{status.value}: still in flight (use `jobs cancel`)"
    if status == Status.SUCCEEDED and view.id not in stored and not force:
        return "its videos are not verified locally (not in the result store); --force deletes it"
    return None


def delete_jobs(
    api: JobsApi, views: Iterable[BatchSynthesis], *, stored: Collection[str], force: bool
) -> list[JobAction]:
    """Delete finished jobs, keeping those whose videos are not stored locally (unless forced).

    Args:
        api: The batch avatar client.
        views: The jobs to delete.
        stored: Job ids whose videos are in the result store.
        force: Delete succeeded jobs even when their videos are not stored.

    Returns:
        What was done with each job.

    Raises:
        ServiceError: The service failed after retries.
    """
    actions = []
    for view in views:
        job_id = view.id or "?"
        status = view.status.value if view.status else "?"
        reason = _verdict(view, stored, force)
        if reason is not None:
            actions.append(JobAction(job_id, status, "kept", reason))
            continue
        api.delete_synthesis(job_id)
        why = (
            "videos in the result store"
            if job_id in stored
            else ("failed: no videos" if view.status == Status.FAILED else "forced")
        )
        actions.append(JobAction(job_id, status, "deleted", why))
    return actions


def prune_jobs(
    api: JobsApi,
    older_than_s: float,
    *,
    stored: Collection[str],
    force: bool,
    now: datetime | None = None,
) -> list[JobAction]:
    """Delete the finished jobs older than ``older_than_s`` (see :func:`delete_jobs`).

    Args:
        api: The batch avatar client.
        older_than_s: Only jobs created longer ago than this.
        stored: Job ids whose videos are in the result store.
        force: Delete succeeded jobs even when their videos are not stored.
        now: The current time (default: now, UTC).

    Returns:
        What was done with each job old enough.

    Raises:
        ServiceError: The service failed after retries.
    """
    now = now or datetime.now(UTC)
    old = []
    for view in api.list_syntheses():
        created = view.created_date_time
        if created is None:
            continue
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        if (now - created).total_seconds() >= older_than_s:
            old.append(view)
    return delete_jobs(api, old, stored=stored, force=force)
