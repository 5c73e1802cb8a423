"""The ``synthesize`` flow: prepared inputs in, verified videos out, nothing paid for twice.

The run itself is :func:`avatarpipe.batch.run.run_synthesis` (plan -> result store -> submit ->
wait -> fetch, with the resubmit policy); this flow gives it the result store (local, or shared
through the blob container when one is configured), Prefect tasks for submitting, downloading
(several at once, retried) and deleting, and turns its progress into events and artifacts.
"""

from __future__ import annotations

import logging
from pathlib import Path
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
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from avatarpipe.batch.checks import check_store
from avatarpipe.batch.fetch import FetchedVideo
from avatarpipe.batch.plan import PlannedJob
from avatarpipe.batch.run import (
    JobRecord,
    Submitted,
    SynthesisOutcome,
    SynthesisRequest,
    fetch_videos,
    run_synthesis,
    submit_planned,
)
from avatarpipe.batch.store import ResultStore, open_result_store
from avatarpipe.batch.submit import JobLookup
from avatarpipe.errors import DownloadError, PermanentServiceError
from avatarpipe.speech.batch_avatar import BatchAvatarClient
from avatarpipe.speech.models import BatchSynthesis
from avatarpipe.storage.blob import BlobStore
from flows.connections import SpeechTarget, blob_store, ensure_rate_limit, open_clients, settings

__all__ = ["synthesize"]


@task(name="submit-jobs", task_run_name="submit-{label}", cache_policy=NO_CACHE)
def submit_task(
    client: BatchAvatarClient,
    lookup: JobLookup,
    jobs: list[PlannedJob],
    label: str,
    destination: str | None,
) -> dict[str, Submitted]:
    """Look every planned id up and create only the missing jobs (refusals are returned)."""
    seen = submit_planned(client, lookup, jobs, destination)
    for job_id, outcome in seen.items():
        if isinstance(outcome, PermanentServiceError):
            get_run_logger().error("job %s refused: %s", job_id, outcome.message)
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
    client: BatchAvatarClient,
    job: BatchSynthesis,
    planned: PlannedJob,
    cache_dir: str,
    store: BlobStore | None,
    results: ResultStore,
) -> list[FetchedVideo]:
    """Fetch and verify one finished job's videos (skipping verified ones), then store them."""
    videos = fetch_videos(client, job, planned, cache_dir, store, results)
    for video in videos:
        emit_event(
            "avatarpipe.video.ready",
            resource={"prefect.resource.id": f"avatarpipe.video.{video.job_id}.{video.index:04d}"},
            payload={"key": video.key, "size_bytes": video.size_bytes, "job_id": video.job_id},
        )
    return videos


@task(name="delete-job", task_run_name="delete-{job_id}", cache_policy=NO_CACHE)
def delete_task(client: BatchAvatarClient, job_id: str) -> None:
    """Delete a finished job (and its service-side results) after a verified download."""
    client.delete_synthesis(job_id)


class _Steps:
    """The run's steps as Prefect tasks, events and a progress artifact."""

    def __init__(
        self,
        client: BatchAvatarClient,
        lookup: JobLookup,
        request: SynthesisRequest,
        store: BlobStore | None,
        results: ResultStore,
    ) -> None:
        self.logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = get_run_logger()
        self.client, self.lookup, self.request, self.store = client, lookup, request, store
        self.results = results
        tracker = create_progress_artifact(
            progress=0.0, description=f"{request.label}: videos ready"
        )
        assert isinstance(tracker, UUID)  # sync context: never a coroutine
        self.tracker = tracker

    def submit(self, jobs: list[PlannedJob], destination: str | None) -> dict[str, Submitted]:
        label = self.request.label or "jobs"
        return submit_task(self.client, self.lookup, jobs, label, destination)

    def download(self, view: BatchSynthesis, job: PlannedJob) -> PrefectFuture[list[FetchedVideo]]:
        return download_task.submit(
            self.client, view, job, self.request.cache_dir, self.store, self.results
        )

    def delete(self, job_id: str) -> None:
        delete_task(self.client, job_id)

    def job_failed(self, record: JobRecord, transient: bool) -> None:
        emit_event(
            "avatarpipe.job.failed",
            resource={"prefect.resource.id": f"avatarpipe.job.{record.job_id}"},
            payload={"error": record.error or "vanished", "transient": transient},
        )

    def videos_ready(self, count: int) -> None:
        update_progress_artifact(self.tracker, progress=100.0 * count / len(self.request.inputs))


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
        ConfigError: The cache folder is not writable or the blob container is unreachable
            (nothing is submitted).
        SynthesisFailedError: Some jobs failed for a reason a resubmission cannot fix (raised
            after every other job finished and was downloaded).
        WaitTimeoutError: Jobs did not finish before ``request.timeout_s``; rerun to re-attach.
    """
    shared = blob_store()
    check_store(Path(request.cache_dir), shared)  # before anything is paid for
    ensure_rate_limit(target.rate_limit_name, target.requests_per_minute)
    results = open_result_store(settings(), shared, root=Path(request.cache_dir))
    store = shared if request.pack else None
    with open_clients(target) as clients:
        lookup = JobLookup(clients.batch)
        steps = _Steps(clients.batch, lookup, request, store, results)
        run = run_synthesis(request, lookup, steps, store=store, results=results)
        service_requests = clients.pipeline.request_count
    outcome = run.outcome(service_requests)
    rows = [r.model_dump() for r in outcome.jobs]
    create_table_artifact(rows, description=f"{request.label}: batch avatar jobs")
    create_markdown_artifact(run.summary(service_requests), description="synthesis summary")
    run.raise_for_failures()
    return outcome
