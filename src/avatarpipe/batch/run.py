"""One synthesis run: plan -> store -> submit -> wait -> fetch, with the resubmit policy.

The request and outcome are plain pydantic models, so they can be Prefect flow parameters and
results. :func:`run_synthesis` drives a run; whatever orchestrates it (the ``synthesize`` flow)
hands it its :class:`RunSteps`: the tasks that submit, download and delete, and where progress,
events and logs go.

Before anything costs money the run asks the result store (:mod:`avatarpipe.batch.store`):

* a work whose videos are stored and still match their checksums is reused: no PUT, no poll,
  no download, whatever the service still holds (``--delete-jobs``, expired jobs);
* a stored video that no longer matches is named (file and reason, in the progress, the log and
  :attr:`SynthesisOutcome.repairs`), discarded, and fetched again from the job while the service
  still has it, else rendered again;
* a work whose last attempt failed goes on from the next attempt id (the counter continues
  across runs): at once for a transient failure, and for a permanent one (the service found the
  input invalid) only with ``retry_failed``; otherwise the failure is reported again with the
  service's message and the fix, for no request at all.

Resubmissions are bounded per run (``max_resubmits`` per work, counting only the jobs this run
creates); re-attaching to an earlier run's failed attempt costs a lookup, never a job.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

from pydantic import BaseModel, Field

from avatarpipe import progress
from avatarpipe.batch.fetch import FetchedVideo, ResultApi, fetch_job
from avatarpipe.batch.plan import JobOptions, PlannedJob, VideoInput, plan_jobs
from avatarpipe.batch.store import ResultStore, StoredJob, StoredVideo
from avatarpipe.batch.submit import JobLookup, SynthesisApi, submit_jobs
from avatarpipe.batch.wait import wait_for_jobs
from avatarpipe.errors import PermanentServiceError, SynthesisFailedError
from avatarpipe.speech.models import (
    BatchAvatarConfig,
    BatchSynthesis,
    BatchSynthesisConfig,
    Status,
)
from avatarpipe.storage.blob import BlobStore

__all__ = [
    "JobRecord",
    "Pending",
    "Repair",
    "RunSteps",
    "Submitted",
    "SynthesisOutcome",
    "SynthesisRequest",
    "SynthesisRun",
    "VideoInput",
    "VideoRecord",
    "fetch_videos",
    "is_transient_job_error",
    "plan_request",
    "run_synthesis",
    "submit_planned",
]

T_co = TypeVar("T_co", covariant=True)

# Job-level error codes worth a resubmission; anything else is the request's fault.
_TRANSIENT_JOB_CODES = {
    "internalservererror",
    "serviceunavailable",
    "toomanyrequests",
    "timeout",
    "internal",
    "resultexpired",
    "vanished",
}


class SynthesisRequest(BaseModel):
    """What a synthesis run makes, and how.

    Attributes:
        label: A readable name (the script's slug): part of job ids and run names.
        inputs: The videos, in order.
        avatar: ``avatarConfig`` for every job.
        synthesis: ``synthesisConfig`` (PlainText inputs).
        custom_voices: Voice name -> CNV deployment id.
        ttl_hours: How long the service keeps finished jobs.
        pack: Pack several videos per job (needs a blob container for ``destinationContainerUrl``).
        cache_dir: Where downloads are cached by job id.
        poll_interval_s: Seconds between polling rounds.
        timeout_s: Overall deadline for the jobs.
        max_resubmits: Resubmissions per work and run after a service-side failure.
        delete_after_download: Delete finished jobs on the service once their videos are verified.
        retry_failed: Resubmit work whose last job failed for a permanent reason (the service
            found the input invalid), once the cause is fixed outside the script.
    """

    label: str = ""
    inputs: list[VideoInput]
    avatar: BatchAvatarConfig
    synthesis: BatchSynthesisConfig | None = None
    custom_voices: dict[str, str] = Field(default_factory=dict)
    ttl_hours: int = 168
    pack: bool = False
    cache_dir: str = "outputs/.cache/jobs"
    poll_interval_s: float = 20.0
    timeout_s: float = 4 * 3600.0
    max_resubmits: int = 2
    delete_after_download: bool = False
    retry_failed: bool = False


class JobRecord(BaseModel):
    """One job as the run saw it."""

    job_id: str
    scene_keys: list[str]
    status: str
    attempt: int = 0
    duration_ms: int | None = None
    size_bytes: int | None = None
    billing_seconds: int | None = None
    characters: int | None = None
    error: str | None = None
    created: bool = False
    reused: bool = False


class Repair(BaseModel):
    """A stored video that did not match its record, and what the run did about it.

    Attributes:
        key: The video's key (``scene-001``).
        job_id: The job it belongs to.
        path: The damaged or missing file.
        reason: What was wrong (missing, size, checksum).
        action: ``fetched again`` (the service still had the job) or ``rendered again``.
    """

    key: str
    job_id: str
    path: str
    reason: str
    action: str = "fetched again"


class VideoRecord(BaseModel):
    """One verified video."""

    key: str
    job_id: str
    path: str
    size_bytes: int
    sha256: str
    duration_ms: int
    downloaded: bool


class SynthesisOutcome(BaseModel):
    """What a synthesis run returns."""

    videos: list[VideoRecord]
    jobs: list[JobRecord]
    service_requests: int
    repairs: list[Repair] = Field(default_factory=list)

    @classmethod
    def merge(cls, outcomes: Sequence[SynthesisOutcome]) -> SynthesisOutcome:
        """One outcome for several runs (a video made by two runs is listed once)."""
        videos = {v.key: v for o in outcomes for v in o.videos}
        return cls(
            videos=list(videos.values()),
            jobs=[j for o in outcomes for j in o.jobs],
            service_requests=sum(o.service_requests for o in outcomes),
            repairs=[r for o in outcomes for r in o.repairs],
        )


# ------------------------------------------------------------------ the run

Submitted = tuple[BatchSynthesis, bool] | PermanentServiceError
"""What submitting one job gave: the service's view and whether this run created it, or the
service's refusal."""


def is_transient_job_error(code: str | None) -> bool:
    """Whether a failed job's ``properties.error.code`` is worth resubmitting.

    Args:
        code: The service's job error code (``None`` when it gave none).

    Returns:
        ``True`` for service-side failures (5xx-like codes, timeouts), ``False`` for input errors.
    """
    return (code or "").lower() in _TRANSIENT_JOB_CODES


def submit_planned(
    api: SynthesisApi, lookup: JobLookup, jobs: list[PlannedJob], destination: str | None
) -> dict[str, Submitted]:
    """Look every planned id up and create only the missing jobs (refusals are returned).

    Args:
        api: The batch avatar client.
        lookup: The run's shared lookup.
        jobs: The jobs to submit.
        destination: The writable container SAS URL for multi-input jobs, if any.

    Returns:
        By job id: the service's view and whether it was created, or the refusal.

    Raises:
        RequestValidationError: A job's request is invalid (before anything is sent for it).
        ServiceError: The service failed after retries.
    """
    seen: dict[str, Submitted] = {}

    def note(job: PlannedJob, view: BatchSynthesis, created: bool) -> None:
        seen[job.job_id] = (view, created)
        for item in job.inputs:
            progress.report("submitted", item.key, job.job_id)

    def refused(job: PlannedJob, exc: PermanentServiceError) -> None:
        seen[job.job_id] = exc

    submit_jobs(
        api,
        lookup,
        jobs,
        destination_url=lambda j: destination if len(j.inputs) > 1 else None,
        on_submitted=note,
        on_rejected=refused,
    )
    return seen


def fetch_videos(
    api: ResultApi,
    job: BatchSynthesis,
    planned: PlannedJob,
    cache_dir: str,
    store: BlobStore | None,
    results: ResultStore | None = None,
) -> list[FetchedVideo]:
    """Fetch and verify one finished job's videos (skipping verified ones), store and report them.

    Args:
        api: The batch avatar client.
        job: The service's view of the job (``Succeeded``).
        planned: The plan it came from.
        cache_dir: The download cache root (the local store's folder).
        store: The blob container packed jobs wrote into, if any.
        results: The result store to record the job in (default: the local one in ``cache_dir``).

    Returns:
        One verified video per input, in input order.

    Raises:
        DownloadError: A file could not be fetched or failed verification.
        ResultExpiredError: The result URL kept expiring after several refreshes.
        StorageError: The result store could not record the job.
    """
    results = results if results is not None else ResultStore(Path(cache_dir))
    # Another run of the same work may be fetching the same files: one at a time, the second
    # finds them verified.
    with results.lock([planned.work_hash]):
        videos = fetch_job(
            api,
            job,
            planned,
            Path(cache_dir),
            blob_stream=store.stream if store is not None else None,
        )
        _store(results, job, planned, videos)
    for video in videos:
        progress.report("downloaded", video.key, str(video.path), size=video.size_bytes)
    return videos


def _store(
    results: ResultStore, job: BatchSynthesis, planned: PlannedJob, videos: list[FetchedVideo]
) -> None:
    """Record a job whose videos are verified."""
    billing = job.properties.billing_details if job.properties else None
    results.put(
        StoredJob(
            job_id=planned.job_id,
            videos=[
                StoredVideo(
                    name=v.path.name,
                    size=v.size_bytes,
                    sha256=v.sha256,
                    index=v.index,
                    duration_ms=v.duration_ms,
                )
                for v in videos
            ],
            stored_at=datetime.now(UTC),
            work_hash=planned.work_hash,
            attempt=planned.attempt,
            billing_seconds=billing.talking_avatar_duration_seconds if billing else None,
        )
    )


class Pending(Protocol[T_co]):
    """A result on its way (a Prefect future, or one already there)."""

    def wait(self) -> None: ...  # noqa: D102

    def result(self) -> T_co: ...  # noqa: D102


class RunSteps(Protocol):
    """The steps a run hands to its orchestrator (Prefect tasks, events and artifacts).

    Attributes:
        logger: Where the run's progress lines go.
    """

    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]

    def submit(self, jobs: list[PlannedJob], destination: str | None) -> dict[str, Submitted]:
        """Submit jobs (see :func:`submit_planned`)."""

    def download(self, view: BatchSynthesis, job: PlannedJob) -> Pending[list[FetchedVideo]]:
        """Start fetching a succeeded job's videos (see :func:`fetch_videos`)."""

    def delete(self, job_id: str) -> None:
        """Delete a job on the service after its videos were verified."""

    def job_failed(self, record: JobRecord, transient: bool) -> None:
        """Tell the world a job failed (before any resubmission)."""

    def videos_ready(self, count: int) -> None:
        """``count`` of the run's videos are verified."""


def _record(job: PlannedJob, view: BatchSynthesis | None, created: bool) -> JobRecord:
    props = view.properties if view else None
    billing = props.billing_details if props else None
    err = props.error if props else None
    return JobRecord(
        job_id=job.job_id,
        scene_keys=[i.key for i in job.inputs],
        status=(view.status.value if view and view.status else "Vanished"),
        attempt=job.attempt,
        duration_ms=props.duration_in_milliseconds if props else None,
        size_bytes=props.size_in_bytes if props else None,
        billing_seconds=billing.talking_avatar_duration_seconds if billing else None,
        characters=(
            (billing.neural_characters or 0) + (billing.custom_neural_characters or 0)
            if billing
            else None
        ),
        error=f"{err.code}: {err.message}" if err and (err.code or err.message) else None,
        created=created,
    )


_PERMANENT_FIX = (
    "the service found the input invalid: fix the script (a changed scene is new work), or, "
    "when the cause was outside the script (voice, avatar, resource), rerun with "
    "`avatarpipe run --retry-failed`"
)


@dataclass
class SynthesisRun:
    """One run's jobs as they go: store -> submit -> wait -> fetch, with the resubmit policy.

    A job that fails for a service-side reason (or vanishes) is resubmitted under the next
    attempt's id, at most ``request.max_resubmits`` times per work in this run (only jobs this
    run creates count); any other failure, and a refusal of the request, is recorded and raised
    by :meth:`raise_for_failures` once every other job has finished and was downloaded.

    Attributes:
        request: What to make.
        steps: The orchestrator's steps.
        results: The result store, asked before anything is submitted.
        destination: The writable container SAS URL for multi-input jobs, if any.
        by_id: Every planned job (resubmissions included) by id.
        records: What the run saw of each job.
        created: Whether this run created each job.
        downloads: The downloads started, by job id.
        failures: The jobs that failed for good, in order.
        videos: The verified videos, in input order (after :meth:`collect`).
        reused: The videos taken from the store, verified, without any request.
        repairs: Stored videos that did not match their record.
        resubmits: Jobs this run created after a failure, per work hash.
        checked: The works whose store record this run has already read.
    """

    request: SynthesisRequest
    steps: RunSteps
    results: ResultStore
    destination: str | None = None
    by_id: dict[str, PlannedJob] = field(default_factory=dict)
    records: dict[str, JobRecord] = field(default_factory=dict)
    created: dict[str, bool] = field(default_factory=dict)
    downloads: dict[str, Pending[list[FetchedVideo]]] = field(default_factory=dict)
    failures: list[JobRecord] = field(default_factory=list)
    videos: list[FetchedVideo] = field(default_factory=list)
    reused: list[FetchedVideo] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)
    resubmits: Counter[str] = field(default_factory=Counter)
    checked: set[str] = field(default_factory=set)

    def from_store(self, planned: list[PlannedJob]) -> list[PlannedJob]:
        """Reuse what the store holds; return the jobs still to submit (attempts continued).

        Raises:
            StorageError: The store could not be read.
        """
        todo = []
        for job in planned:
            nxt = self._next(job)
            if nxt is not None:
                todo.append(nxt)
        return todo

    def _next(self, job: PlannedJob) -> PlannedJob | None:
        """What to submit for one planned work, or ``None`` when nothing is to be submitted."""
        record = self.results.work(job.work_hash)
        if record is None:
            return job
        self.checked.add(job.work_hash)
        if record.status == "Succeeded":
            stored = self.results.get(record.job_id)
            at = job.at_attempt(record.attempt)
            self.by_id[at.job_id] = at
            if stored is not None and self._reuse(at, stored):
                return None
            return at  # the service may still have it; else it is rendered again
        if record.transient or self.request.retry_failed:
            again = job.at_attempt(record.attempt + 1)
            self.by_id[again.job_id] = again
            self.steps.logger.info(
                "work of %s failed in an earlier run (%s): resubmitting as %s",
                record.job_id,
                record.error,
                again.job_id,
            )
            return again
        at = job.at_attempt(record.attempt)
        self.by_id[at.job_id] = at
        failed = _record(at, None, False)
        failed.status = "Failed"
        failed.error = f"{record.error or 'failed'} ({_PERMANENT_FIX})"
        self.records[at.job_id] = failed
        self.failures.append(failed)
        for item in at.inputs:
            progress.report("failed", item.key, failed.error)
        self.steps.logger.error("job %s failed in an earlier run: %s", at.job_id, failed.error)
        return None

    def _reuse(self, job: PlannedJob, stored: StoredJob) -> bool:
        """Take a stored job's videos after re-hashing them; ``False`` when one must be fetched."""
        problems = self.results.verify(stored)
        keys = {n: item.key for n, item in enumerate(job.inputs, start=1)}
        if problems or len(stored.videos) != len(job.inputs):
            for problem in problems:
                video = next(v for v in stored.videos if v.name == problem.name)
                key = keys.get(video.index, problem.name)
                self.repairs.append(
                    Repair(key=key, job_id=job.job_id, path=problem.path, reason=problem.reason)
                )
                line = f"{problem.path}: {problem.reason}: getting it again from job {job.job_id}"
                progress.report("info", key, line)
                self.steps.logger.warning("stored video %s", line)
            return False
        for video in stored.videos:
            self.reused.append(
                FetchedVideo(
                    key=keys[video.index],
                    job_id=job.job_id,
                    index=video.index,
                    path=self.results.video_path(job.job_id, video.name),
                    size_bytes=video.size,
                    sha256=video.sha256,
                    duration_ms=video.duration_ms,
                    summary=None,
                    downloaded=False,
                )
            )
            progress.report("downloaded", keys[video.index], "verified in the store")
        self.records[job.job_id] = JobRecord(
            job_id=job.job_id,
            scene_keys=list(keys.values()),
            status=Status.SUCCEEDED.value,
            attempt=job.attempt,
            duration_ms=sum(v.duration_ms for v in stored.videos),
            size_bytes=sum(v.size for v in stored.videos),
            billing_seconds=stored.billing_seconds,
            reused=True,
        )
        return True

    def submit(self, jobs: list[PlannedJob]) -> list[str]:
        """Submit jobs under their works' locks; returns the ids accepted.

        Inside the locks the store is asked again (another run may have stored the work while
        this one waited); refusals become failures.
        """
        accepted = []
        with self.results.lock(j.work_hash for j in jobs):
            pending = []
            for job in jobs:
                # Another run may have stored a work this run found missing while it waited.
                fresh = job.work_hash not in self.checked
                self.checked.add(job.work_hash)
                stored = self.results.find_work(job.work_hash) if fresh else None
                if stored is not None:
                    at = job.at_attempt(stored.attempt)
                    self.by_id[at.job_id] = at
                    if self._reuse(at, stored):
                        continue
                pending.append(job)
            outcomes = self.steps.submit(pending, self.destination) if pending else {}
        for job_id, outcome in outcomes.items():
            job = self.by_id[job_id]
            if isinstance(outcome, PermanentServiceError):
                record = _record(job, None, False)
                record.status = "Refused"
                record.error = outcome.message
                self.records[job_id] = record
                self.failures.append(record)
                for item in job.inputs:
                    progress.report("failed", item.key, outcome.message)
                continue
            view, was_created = outcome
            self.created[job_id] = was_created
            if was_created and (job.attempt > 0 or self._known(job)):
                self.resubmits[job.work_hash] += 1
            self.records[job_id] = _record(job, view, was_created)
            accepted.append(job_id)
        return accepted

    def _known(self, job: PlannedJob) -> bool:
        """Whether an earlier run already paid for this work (created again: a resubmission)."""
        return any(r.job_id == job.job_id for r in self.repairs)

    def changed(self, view: BatchSynthesis) -> None:
        """Report a job's new status."""
        assert view.id is not None
        stage = {Status.RUNNING: "rendering", Status.SUCCEEDED: "rendered"}.get(
            view.status or Status.NOT_STARTED, "queued"
        )
        for item in self.by_id[view.id].inputs:
            progress.report(stage, item.key, view.id)
        self.steps.logger.info("job %s: %s", view.id, view.status.value if view.status else "?")

    def final(self, job_id: str, view: BatchSynthesis | None) -> list[str]:
        """A job is final (``None``: vanished): fetch it, resubmit it, or record the failure.

        Returns:
            The ids of resubmitted jobs to wait for too.
        """
        job = self.by_id[job_id]
        created = self.created.get(job_id, False)
        record = _record(job, view, created)
        self.records[job_id] = record
        if view is not None and view.status == Status.SUCCEEDED:
            self.downloads[job_id] = self.steps.download(view, job)
            return []
        code = None
        if view is not None and view.properties and view.properties.error:
            code = view.properties.error.code
        transient = view is None or is_transient_job_error(code)
        if view is not None:
            self.results.note_failure(
                job.work_hash, job_id, job.attempt, record.error, transient=transient
            )
        self.steps.job_failed(record, transient)
        # A permanent failure of an earlier run's job is retried only when asked.
        retry = transient or (self.request.retry_failed and not created)
        if retry and self.resubmits[job.work_hash] < self.request.max_resubmits:
            again = job.retry()
            self.by_id[again.job_id] = again
            self.steps.logger.warning(
                "job %s failed (%s): resubmitting as %s", job_id, record.error, again.job_id
            )
            return self.submit([again])
        if not transient:
            record.error = f"{record.error or 'failed'} ({_PERMANENT_FIX})"
        for item in job.inputs:
            progress.report("failed", item.key, record.error or "vanished")
        self.failures.append(record)
        return []

    def collect(self) -> None:
        """Wait for the downloads, delete jobs when asked, and put the videos in input order.

        Raises:
            DownloadError: A download failed for good.
        """
        for pending in self.downloads.values():
            pending.wait()
        self.videos.extend(self.reused)
        for job_id, pending in self.downloads.items():
            self.videos.extend(pending.result())
            self.steps.videos_ready(len(self.videos))
            if self.request.delete_after_download:
                self.steps.delete(job_id)
        order = {item.key: n for n, item in enumerate(self.request.inputs)}
        self.videos.sort(key=lambda v: order[v.key])
        self.steps.videos_ready(len(self.videos))

    def outcome(self, service_requests: int) -> SynthesisOutcome:
        """What the run made (call after :meth:`collect`)."""
        repairs = [
            r.model_copy(
                update={"action": "rendered again" if self.created.get(r.job_id) else r.action}
            )
            for r in self.repairs
        ]
        return SynthesisOutcome(
            videos=[
                VideoRecord(
                    key=v.key,
                    job_id=v.job_id,
                    path=str(v.path),
                    size_bytes=v.size_bytes,
                    sha256=v.sha256,
                    duration_ms=v.duration_ms,
                    downloaded=v.downloaded,
                )
                for v in self.videos
            ],
            jobs=list(self.records.values()),
            service_requests=service_requests,
            repairs=repairs,
        )

    def summary(self, service_requests: int) -> str:
        """The run's summary in Markdown (videos, jobs, billing, repairs, failures)."""
        records = self.records.values()
        reused = sum(1 for r in records if r.reused)
        lines = [
            f"# {self.request.label or 'synthesis'}",
            "",
            f"- videos ready: **{len(self.videos)} / {len(self.request.inputs)}**",
            f"- jobs: {len(records)} ({sum(self.created.values())} created by this run, "
            f"{reused} reused from the result store)",
            f"- avatar seconds billed: {sum(r.billing_seconds or 0 for r in records)}",
            f"- service requests: {service_requests}",
        ]
        for repair in self.repairs:
            lines.append(f"- REPAIRED {repair.path} ({repair.key}): {repair.reason}")
        for failure in self.failures:
            lines.append(
                f"- FAILED {failure.job_id} ({', '.join(failure.scene_keys)}): {failure.error}"
            )
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        """Raise the first failure, if any job failed for good.

        Raises:
            SynthesisFailedError: Some jobs failed for a reason a resubmission cannot fix.
        """
        if not self.failures:
            return
        first = self.failures[0]
        code, _, message = (first.error or "vanished").partition(": ")
        raise SynthesisFailedError(
            first.job_id,
            code=code if message else None,
            service_message=(
                f"{message or code} (scenes: {', '.join(first.scene_keys)}); "
                f"{len(self.failures)} job(s) failed, {len(self.videos)} video(s) kept in "
                f"{self.request.cache_dir}"
            ),
        )


def plan_request(request: SynthesisRequest, *, pack: bool) -> list[PlannedJob]:
    """The jobs a run of ``request`` submits (or re-attaches to), with their ids.

    The one place that turns a request into planned jobs: a run and an estimate of it
    (:mod:`avatarpipe.batch.estimate`) plan alike.

    Args:
        request: The inputs and how to make them.
        pack: Pack several videos per job (a blob container is configured).

    Returns:
        The planned jobs, in input order.

    Raises:
        RequestValidationError: No inputs, duplicate keys, or one input over the limits.
    """
    options = JobOptions(
        avatar=request.avatar,
        synthesis=request.synthesis,
        custom_voices=tuple(sorted(request.custom_voices.items())),
        ttl_hours=request.ttl_hours,
        label=request.label,
    )
    return plan_jobs(request.inputs, options, pack=pack)


def run_synthesis(
    request: SynthesisRequest,
    lookup: JobLookup,
    steps: RunSteps,
    *,
    store: BlobStore | None,
    results: ResultStore | None = None,
) -> SynthesisRun:
    """Make every requested video with the batch avatar API, safely rerunnable.

    Plan (deterministic job ids) -> result store (reuse verified videos; continue attempts) ->
    submit (look every id up first; PUT only what the service lacks) -> wait (one list call per
    round polls every job in flight) -> fetch each job as soon as it is final -> collect.

    Args:
        request: The inputs and how to make them.
        lookup: The run's shared lookup (over the batch avatar client).
        steps: The orchestrator's steps.
        store: The blob container to pack several videos per job into (``None``: one per job).
        results: The result store (default: the local one in ``request.cache_dir``).

    Returns:
        The finished run (see :meth:`SynthesisRun.outcome`, :meth:`SynthesisRun.summary` and
        :meth:`SynthesisRun.raise_for_failures`).

    Raises:
        WaitTimeoutError: Jobs did not finish before ``request.timeout_s``; rerun to re-attach.
        DownloadError: A download failed for good.
        ServiceError: The service failed after retries.
        StorageError: The result store could not be read or written.
    """
    planned = plan_request(request, pack=store is not None)
    total = len(request.inputs)
    progress.report("planned", "", f"{total} videos in {len(planned)} jobs", total=total)
    steps.logger.info("planned %d videos in %d jobs", total, len(planned))
    run = SynthesisRun(
        request,
        steps,
        results if results is not None else ResultStore(Path(request.cache_dir)),
        by_id={job.job_id: job for job in planned},
    )
    todo = run.from_store(planned)
    if run.reused:
        steps.logger.info(
            "%d of %d videos verified in the result store (%s): not paid for again",
            len(run.reused),
            total,
            run.results.where,
        )
    if todo and store is not None:
        store.ensure_container()
        run.destination = store.container_sas_url(write=True)
    accepted = run.submit(todo) if todo else []
    wait_for_jobs(
        lookup,
        accepted,
        poll_interval_s=request.poll_interval_s,
        timeout_s=request.timeout_s,
        on_change=run.changed,
        on_final=run.final,
    )
    run.collect()
    return run
