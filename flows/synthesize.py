"""The ``synthesize`` flow: prepared inputs in, verified videos out, nothing paid for twice.

Plan (deterministic job ids) -> submit (look every id up first; PUT only what the service lacks)
-> wait (one list call per round polls every job in flight, inside the shared rate budget) ->
download each job as soon as it is final (streamed, size-checked, cached by job id) -> report.
A job that fails for a service-side reason is resubmitted under a derived id a bounded number
of times; a job that fails because of its input fails the run after the others have finished.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from avatarpipe import progress
from avatarpipe.batch.fetch import FetchedVideo, fetch_job
from avatarpipe.batch.plan import JobOptions, PlannedJob, VideoInput, plan_jobs
from avatarpipe.batch.track import JobLookup, is_transient_job_error, submit_jobs, wait_for_jobs
from avatarpipe.errors import DownloadError, PermanentServiceError, SynthesisFailedError
from avatarpipe.speech.client import SpeechClient
from avatarpipe.speech.models import (
    BatchAvatarConfig,
    BatchSynthesis,
    BatchSynthesisConfig,
    InputKind,
    Status,
)
from avatarpipe.storage.blob import BlobStore, store_from_settings
from flows.speech import SpeechTarget, ensure_rate_limit, open_client, settings

__all__ = ["InputItem", "JobRecord", "SynthesisOutcome", "SynthesisRequest", "synthesize"]

log = logging.getLogger(__name__)


class InputItem(BaseModel):
    """One video to make (a flow parameter: plain data)."""

    key: str
    content: str
    input_kind: Literal["PlainText", "SSML"] = "SSML"


class SynthesisRequest(BaseModel):
    """What the ``synthesize`` flow makes, and how.

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
        max_resubmits: Resubmissions per job after a service-side failure.
        delete_after_download: Delete finished jobs on the service once their videos are verified.
    """

    label: str = ""
    inputs: list[InputItem]
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
    """What ``synthesize`` returns."""

    videos: list[VideoRecord]
    jobs: list[JobRecord]
    service_requests: int


@task(name="submit-jobs", task_run_name="submit-{label}", cache_policy=NO_CACHE)
def submit_task(
    client: SpeechClient,
    lookup: JobLookup,
    jobs: list[PlannedJob],
    label: str,
    destination: str | None,
) -> dict[str, tuple[BatchSynthesis, bool] | PermanentServiceError]:
    """Look every planned id up and create only the missing jobs (refusals are returned)."""
    seen: dict[str, tuple[BatchSynthesis, bool] | PermanentServiceError] = {}

    def note(job: PlannedJob, view: BatchSynthesis, created: bool) -> None:
        seen[job.job_id] = (view, created)
        for item in job.inputs:
            progress.report("submitted", item.key, job.job_id)

    def refused(job: PlannedJob, exc: PermanentServiceError) -> None:
        seen[job.job_id] = exc
        get_run_logger().error("job %s refused: %s", job.job_id, exc.message)

    submit_jobs(
        client,
        lookup,
        jobs,
        destination_url=lambda j: destination if len(j.inputs) > 1 else None,
        on_submitted=note,
        on_rejected=refused,
    )
    return seen


@task(
    name="download-job",
    task_run_name="download-{job.id}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=lambda _t, _r, state: isinstance(
        state.result(raise_on_failure=False), DownloadError
    ),
)
def download_task(
    client: SpeechClient,
    job: BatchSynthesis,
    planned: PlannedJob,
    cache_dir: str,
    store: BlobStore | None,
) -> list[FetchedVideo]:
    """Fetch and verify one finished job's videos (skipping verified ones)."""
    videos = fetch_job(
        client,
        job,
        planned,
        Path(cache_dir),
        blob_fetch=store.download if store is not None else None,
    )
    for video in videos:
        progress.report("downloaded", video.key, str(video.path), size=video.size_bytes)
        emit_event(
            "avatarpipe.video.ready",
            resource={"prefect.resource.id": f"avatarpipe.video.{video.job_id}.{video.index:04d}"},
            payload={"key": video.key, "size_bytes": video.size_bytes, "job_id": video.job_id},
        )
    return videos


@task(name="delete-job", task_run_name="delete-{job_id}", cache_policy=NO_CACHE)
def delete_task(client: SpeechClient, job_id: str) -> None:
    """Delete a finished job (and its service-side results) after a verified download."""
    client.delete_synthesis(job_id)


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


@flow(
    name="synthesize",
    flow_run_name="synthesize-{request.label}",
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
    log_prints=True,
)
def synthesize(request: SynthesisRequest, target: SpeechTarget) -> SynthesisOutcome:
    """Make every requested video with the batch avatar API, safely rerunnable.

    Args:
        request: The inputs and how to make them.
        target: Where the Speech service is.

    Returns:
        The verified videos and a record of every job.

    Raises:
        SynthesisFailedError: Some jobs failed for a reason a resubmission cannot fix (raised
            after every other job finished and was downloaded).
        WaitTimeoutError: Jobs did not finish before ``request.timeout_s``; rerun to re-attach.
    """
    logger = get_run_logger()
    ensure_rate_limit(target.rate_limit_name, target.requests_per_minute)
    options = JobOptions(
        avatar=request.avatar,
        synthesis=request.synthesis,
        custom_voices=tuple(sorted(request.custom_voices.items())),
        ttl_hours=request.ttl_hours,
        label=request.label,
    )
    items = [VideoInput(i.key, i.content, InputKind(i.input_kind)) for i in request.inputs]
    store = store_from_settings(settings()) if request.pack else None
    planned = plan_jobs(items, options, pack=store is not None)
    by_id = {job.job_id: job for job in planned}
    total = len(items)
    progress.report("planned", "", f"{total} videos in {len(planned)} jobs", total=total)
    logger.info("planned %d videos in %d jobs", total, len(planned))
    destination = None
    if store is not None:
        store.ensure_container()
        destination = store.container_sas_url(write=True)
    tracker = create_progress_artifact(progress=0.0, description=f"{request.label}: videos ready")
    assert isinstance(tracker, UUID)  # sync context: never a coroutine
    records: dict[str, JobRecord] = {}
    created: dict[str, bool] = {}
    downloads: dict[str, PrefectFuture[list[FetchedVideo]]] = {}
    failures: list[JobRecord] = []

    with open_client(target) as client:
        lookup = JobLookup(client)

        def submit(jobs: list[PlannedJob]) -> list[str]:
            """Submit jobs; returns the ids accepted (refusals become failures)."""
            seen = submit_task(client, lookup, jobs, request.label or "jobs", destination)
            accepted = []
            for job_id, outcome in seen.items():
                job = by_id[job_id]
                if isinstance(outcome, PermanentServiceError):
                    record = _record(job, None, False)
                    record.status = "Refused"
                    record.error = outcome.message
                    records[job_id] = record
                    failures.append(record)
                    for item in job.inputs:
                        progress.report("failed", item.key, outcome.message)
                    continue
                view, was_created = outcome
                created[job_id] = was_created
                records[job_id] = _record(job, view, was_created)
                accepted.append(job_id)
            return accepted

        def on_change(view: BatchSynthesis) -> None:
            assert view.id is not None
            job = by_id[view.id]
            stage = {Status.RUNNING: "rendering", Status.SUCCEEDED: "rendered"}.get(
                view.status or Status.NOT_STARTED, "queued"
            )
            for item in job.inputs:
                progress.report(stage, item.key, view.id)
            logger.info("job %s: %s", view.id, view.status.value if view.status else "?")

        def on_final(job_id: str, view: BatchSynthesis | None) -> list[str]:
            job = by_id[job_id]
            record = _record(job, view, created.get(job_id, False))
            records[job_id] = record
            if view is not None and view.status == Status.SUCCEEDED:
                downloads[job_id] = download_task.submit(
                    client, view, job, request.cache_dir, store
                )
                return []
            code = None
            if view is not None and view.properties and view.properties.error:
                code = view.properties.error.code
            transient = view is None or is_transient_job_error(code)
            emit_event(
                "avatarpipe.job.failed",
                resource={"prefect.resource.id": f"avatarpipe.job.{job_id}"},
                payload={"error": record.error or "vanished", "transient": transient},
            )
            if transient and job.attempt < request.max_resubmits:
                again = job.retry()
                by_id[again.job_id] = again
                logger.warning(
                    "job %s failed (%s): resubmitting as %s", job_id, record.error, again.job_id
                )
                return submit([again])
            for item in job.inputs:
                progress.report("failed", item.key, record.error or "vanished")
            failures.append(record)
            return []

        accepted = submit(planned)
        wait_for_jobs(
            lookup,
            accepted,
            poll_interval_s=request.poll_interval_s,
            timeout_s=request.timeout_s,
            on_change=on_change,
            on_final=on_final,
        )
        wait(list(downloads.values()))
        videos: list[FetchedVideo] = []
        for job_id, future in downloads.items():
            fetched = future.result()
            videos.extend(fetched)
            update_progress_artifact(tracker, progress=100.0 * len(videos) / total)
            if request.delete_after_download:
                delete_task(client, job_id)
        service_requests = client.request_count

    order = {item.key: n for n, item in enumerate(items)}
    videos.sort(key=lambda v: order[v.key])
    update_progress_artifact(tracker, progress=100.0 * len(videos) / total)
    rows = [r.model_dump() for r in records.values()]
    create_table_artifact(rows, description=f"{request.label}: batch avatar jobs")
    lines = [
        f"# {request.label or 'synthesis'}",
        "",
        f"- videos ready: **{len(videos)} / {total}**",
        f"- jobs: {len(records)} ({sum(created.values())} created by this run)",
        f"- avatar seconds billed: {sum(r.billing_seconds or 0 for r in records.values())}",
        f"- service requests: {service_requests}",
    ]
    for failure in failures:
        lines.append(
            f"- FAILED {failure.job_id} ({', '.join(failure.scene_keys)}): {failure.error}"
        )
    create_markdown_artifact("\n".join(lines), description="synthesis summary")
    if failures:
        first = failures[0]
        raise SynthesisFailedError(
            first.job_id,
            code=(first.error or "").split(":", 1)[0] or None,
            service_message=(
                f"{(first.error or 'vanished')} (scenes: {', '.join(first.scene_keys)}); "
                f"{len(failures)} job(s) failed, {len(videos)} video(s) kept in {request.cache_dir}"
            ),
        )
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
            for v in videos
        ],
        jobs=list(records.values()),
        service_requests=service_requests,
    )
