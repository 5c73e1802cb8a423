"""A synthesis run without Prefect: the library's plan -> submit -> wait -> fetch on its own.

Real emulator over HTTP, plain in-process steps instead of Prefect tasks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from avatarpipe.batch.fetch import FetchedVideo
from avatarpipe.batch.plan import PlannedJob
from avatarpipe.batch.run import (
    JobRecord,
    Submitted,
    SynthesisRequest,
    VideoInput,
    fetch_videos,
    is_transient_job_error,
    run_synthesis,
    submit_planned,
)
from avatarpipe.batch.submit import JobLookup
from avatarpipe.errors import SynthesisFailedError
from avatarpipe.speech.batch_avatar import BatchAvatarClient
from avatarpipe.speech.models import BatchAvatarConfig, BatchSynthesis, BatchSynthesisConfig


class _Done:
    def __init__(self, videos: list[FetchedVideo]) -> None:
        self.videos = videos

    def wait(self) -> None:
        return None

    def result(self) -> list[FetchedVideo]:
        return self.videos


class PlainSteps:
    """Every step at once, in this thread; records what the run told it."""

    def __init__(self, client: BatchAvatarClient, lookup: JobLookup, cache_dir: Path) -> None:
        self.logger = logging.getLogger("test-run")
        self.client, self.lookup, self.cache_dir = client, lookup, cache_dir
        self.failed: list[tuple[str, bool]] = []
        self.deleted: list[str] = []
        self.ready: list[int] = []

    def submit(self, jobs: list[PlannedJob], destination: str | None) -> dict[str, Submitted]:
        return submit_planned(self.client, self.lookup, jobs, destination)

    def download(self, view: BatchSynthesis, job: PlannedJob) -> _Done:
        return _Done(fetch_videos(self.client, view, job, str(self.cache_dir), None))

    def delete(self, job_id: str) -> None:
        self.client.delete_synthesis(job_id)
        self.deleted.append(job_id)

    def job_failed(self, record: JobRecord, transient: bool) -> None:
        self.failed.append((record.job_id, transient))

    def videos_ready(self, count: int) -> None:
        self.ready.append(count)


def _request(tmp_path: Path, texts: list[str], **extra: Any) -> SynthesisRequest:
    return SynthesisRequest(
        label="run",
        inputs=[
            VideoInput(key=f"scene-{i:03d}", content=t, input_kind="PlainText")
            for i, t in enumerate(texts, start=1)
        ],
        avatar=BatchAvatarConfig(
            talking_avatar_character="lisa", talking_avatar_style="casual-sitting"
        ),
        synthesis=BatchSynthesisConfig(voice="en-US-AvaMultilingualNeural"),
        cache_dir=str(tmp_path / "cache"),
        poll_interval_s=0.1,
        timeout_s=120,
        **extra,
    )


def test_a_run_resubmits_a_transient_failure_and_deletes_after_download(
    make_emu: Any, batch_client: Any, tmp_path: Path
) -> None:
    emu = make_emu()
    emu.configure(faults={"seed": 3, "fail_next_jobs": 1})
    request = _request(tmp_path, ["One.", "Two.", "Three."], delete_after_download=True)
    with batch_client(emu.url) as client:
        lookup = JobLookup(client)
        steps = PlainSteps(client, lookup, tmp_path / "cache")
        run = run_synthesis(request, lookup, steps, store=None)
        outcome = run.outcome(client.pipeline.request_count)
    run.raise_for_failures()  # nothing failed for good
    assert [v.key for v in outcome.videos] == ["scene-001", "scene-002", "scene-003"]
    assert all(Path(v.path).stat().st_size == v.size_bytes for v in outcome.videos)
    assert len(steps.failed) == 1 and steps.failed[0][1] is True
    retried = [j for j in outcome.jobs if j.attempt == 1]
    assert len(retried) == 1 and retried[0].job_id == steps.failed[0][0] + "-r1"
    assert sorted(steps.deleted) == sorted(v.job_id for v in outcome.videos)
    assert steps.ready[-1] == 3
    assert "videos ready: **3 / 3**" in run.summary(outcome.service_requests)


def test_a_permanent_failure_is_raised_after_the_good_videos(
    make_emu: Any, batch_client: Any, tmp_path: Path
) -> None:
    emu = make_emu()
    request = _request(tmp_path, ["Fine."])
    bad = request.model_copy(
        update={
            "inputs": [
                *request.inputs,
                VideoInput(key="broken", content="<speak>not closed", input_kind="SSML"),
            ]
        }
    )
    with batch_client(emu.url) as client:
        lookup = JobLookup(client)
        steps = PlainSteps(client, lookup, tmp_path / "cache")
        run = run_synthesis(bad, lookup, steps, store=None)
    assert [v.key for v in run.videos] == ["scene-001"]
    with pytest.raises(SynthesisFailedError) as info:
        run.raise_for_failures()
    assert "broken" in info.value.message and "1 video(s) kept" in info.value.message
    assert "FAILED" in run.summary(0)


def _run(emu_url: str, batch_client: Any, request: SynthesisRequest, cache: Path) -> Any:
    with batch_client(emu_url) as client:
        lookup = JobLookup(client)
        steps = PlainSteps(client, lookup, cache)
        return run_synthesis(request, lookup, steps, store=None)


def test_a_permanent_failure_is_reported_again_for_free_and_resubmitted_only_when_asked(
    make_emu: Any, batch_client: Any, tmp_path: Path
) -> None:
    emu = make_emu()
    request = _request(tmp_path, ["Fine."]).model_copy(
        update={"inputs": [VideoInput(key="broken", content="<speak>x", input_kind="SSML")]}
    )
    first = _run(emu.url, batch_client, request, tmp_path / "cache")
    [failed] = first.failures
    assert not is_transient_job_error(failed.error.split(":", 1)[0])
    puts = dict(emu.stats()["puts_by_job_id"])

    again = _run(emu.url, batch_client, request, tmp_path / "cache")
    with pytest.raises(SynthesisFailedError) as info:
        again.raise_for_failures()
    assert "--retry-failed" in info.value.message and "BadRequest" in info.value.message
    assert emu.stats()["puts_by_job_id"] == puts, "a permanent failure is not paid for again"

    retried = _run(
        emu.url, batch_client, request.model_copy(update={"retry_failed": True}), tmp_path / "cache"
    )
    new = set(emu.stats()["puts_by_job_id"]) - set(puts)
    assert new == {failed.job_id + "-r1"}, "asked to: resubmitted once, under the next attempt"
    assert [j.job_id for j in retried.failures] == [failed.job_id + "-r1"]


def test_a_damaged_video_whose_job_is_gone_is_rendered_again_and_named(
    make_emu: Any, batch_client: Any, tmp_path: Path
) -> None:
    emu = make_emu()
    cache = tmp_path / "cache"
    request = _request(tmp_path, ["One.", "Two."], delete_after_download=True)
    first = _run(emu.url, batch_client, request, cache).outcome(0)
    damaged = Path(first.videos[1].path)
    damaged.write_bytes(b"\0" * damaged.stat().st_size)  # zeroed, same size

    run = _run(emu.url, batch_client, request, cache)
    outcome = run.outcome(0)

    [repair] = outcome.repairs
    assert (repair.key, repair.path, repair.action) == ("scene-002", str(damaged), "rendered again")
    assert "checksum" in repair.reason
    stats = emu.stats()
    assert stats["jobs_created"] == 3, "only the damaged video's job is paid for again"
    assert [v.sha256 for v in outcome.videos] == [v.sha256 for v in first.videos]
    assert [v.downloaded for v in outcome.videos] == [False, True]
    assert f"REPAIRED {damaged}" in run.summary(0)
