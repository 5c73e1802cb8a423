"""Pay once, recover always: the result store is asked before anything costs money (issue 14).

Real Prefect runs against the real emulator over HTTP (and two real ``avatarpipe run``
processes, and real Azurite); every claim is checked on the emulator's counters
(``/emulator/stats``): jobs created, PUTs per job id, video downloads.

* ``--delete-jobs``, or jobs expired on the service: a rerun creates no job, downloads nothing.
* Every attempt failed, faults off, rerun: only the failed work is submitted again, under the
  next attempt ids, and the run succeeds.
* Two runs of one script at once: both exit 0, each job is created once, both folders whole.
* A cached video corrupted at the same size: the rerun names it, fetches it again and publishes
  the service's bytes.
* A store in a blob container: a second worker with an empty output folder pays for nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flow_emu import Emu

from avatarpipe import progress
from avatarpipe.batch.run import SynthesisRequest, VideoInput
from avatarpipe.errors import SynthesisFailedError
from avatarpipe.speech.models import BatchAvatarConfig, BatchSynthesisConfig, VideoCodec
from flows.connections import SpeechTarget
from flows.script_to_video import RunOptions, script_to_video
from flows.synthesize import synthesize

pytestmark = pytest.mark.usefixtures("prefect_harness")

CLI = Path(sys.executable).with_name("avatarpipe")
SCRIPT = """\
title: Pay once
slug: pay-once
avatar: {character: lisa, style: casual-sitting}
voice: {name: en-US-AvaMultilingualNeural}
video: {format: mp4, codec: h264}
scenes:
  - text: The first scene is paid for once.
  - text: The second scene is paid for once too.
"""


def _request(cache: Path, label: str, scenes: int = 2, **extra: Any) -> SynthesisRequest:
    return SynthesisRequest(
        label=label,
        inputs=[
            VideoInput(key=f"scene-{i:03d}", content=f"{label} scene {i}.", input_kind="PlainText")
            for i in range(1, scenes + 1)
        ],
        avatar=BatchAvatarConfig(
            talking_avatar_character="lisa",
            talking_avatar_style="casual-sitting",
            video_codec=VideoCodec.H264,
        ),
        synthesis=BatchSynthesisConfig(voice="en-US-AvaMultilingualNeural"),
        cache_dir=str(cache),
        poll_interval_s=0.2,
        timeout_s=120,
        **extra,
    )


def _target(emu: Emu) -> SpeechTarget:
    return SpeechTarget(endpoint=emu.url, backend="emulator", requests_per_minute=6000)


def _counters(emu: Emu) -> tuple[int, int]:
    stats = emu.stats()
    return stats["jobs_created"], stats["downloads_by_kind"]["video"]


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.parametrize("gone", ["deleted", "expired"])
def test_a_rerun_pays_for_nothing_once_the_service_dropped_the_jobs(
    emu: Emu, tmp_path: Path, gone: str
) -> None:
    cache = tmp_path / "cache"
    request = _request(cache, f"gone-{gone}", delete_after_download=gone == "deleted")
    started = time.monotonic()
    first = synthesize(request, _target(emu))
    first_s = time.monotonic() - started
    before = _counters(emu)
    assert before == (2, 2)
    if gone == "expired":
        emu.admin.set_clock_offset(170 * 3600.0)  # past the jobs' 168 h time to live
        _wait(lambda: emu.stats()["jobs_expired"] == 2, 30, "the jobs to expire")
    assert emu.stats()["jobs_by_status"] == {}, "the service holds none of the jobs"

    started = time.monotonic()
    again = synthesize(request, _target(emu))
    rerun_s = time.monotonic() - started

    assert _counters(emu) == before, "no job created, no video downloaded"
    assert all(n == 1 for n in emu.stats()["puts_by_job_id"].values())
    assert [v.sha256 for v in again.videos] == [v.sha256 for v in first.videos]
    assert not any(v.downloaded for v in again.videos)
    assert all(j.reused for j in again.jobs)
    assert again.service_requests == 0, "not even a lookup: the store answered"
    print(f"{gone}: first run {first_s:.2f} s, rerun {rerun_s:.2f} s, counters {before}")


def test_failed_jobs_do_not_stick(make_emu: Any, tmp_path: Path) -> None:
    emu = make_emu()
    cache = tmp_path / "cache"
    request = _request(cache, "fail-all", scenes=3, max_resubmits=1)
    emu.configure(faults={"p_job_fail": 1.0})
    with pytest.raises(SynthesisFailedError):
        synthesize(request, _target(emu))
    failed = set(emu.stats()["puts_by_job_id"])
    assert len(failed) == 6, "each of 3 works: the first job and one resubmission"

    emu.configure(faults={"p_job_fail": 0.0})
    outcome = synthesize(request, _target(emu))

    stats = emu.stats()
    new = set(stats["puts_by_job_id"]) - failed
    assert stats["jobs_created"] == 9, "one new job per failed work, nothing else"
    assert all(n == 1 for n in stats["puts_by_job_id"].values())
    assert {j.job_id for j in outcome.jobs if j.created} == new
    assert all(job_id.endswith("-r2") for job_id in new), "the attempt counter went on"
    assert len(outcome.videos) == 3


def _cli_env(emu: Emu, prefect_api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATARPIPE_")}
    return {
        **env,
        "PREFECT_API_URL": prefect_api_url,
        "AVATARPIPE_SPEECH_ENDPOINT": emu.url,
        "AVATARPIPE_BACKEND": "emulator",
        "COLUMNS": "160",
    }


@pytest.fixture
def prefect_api_url(prefect_harness: None) -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


def test_two_runs_of_one_script_at_once_both_finish(
    emu: Emu, tmp_path: Path, prefect_api_url: str
) -> None:
    script = tmp_path / "pay-once.yaml"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    args = [str(CLI), "run", str(script), "--out", str(out), "--no-post", "--poll", "0.2"]
    procs = [
        subprocess.Popen(  # noqa: S603 - fixed argv
            args,
            env=_cli_env(emu, prefect_api_url),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=240)[0].decode(errors="replace") for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(o[-2000:] for o in outputs)
    stats = emu.stats()
    assert stats["jobs_created"] == 2
    assert all(n == 1 for n in stats["puts_by_job_id"].values()), stats["puts_by_job_id"]
    folders = sorted(p for p in (out / "pay-once").iterdir())
    assert len(folders) == 2, "each run published its own folder; no staging folder is left"
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        assert [o["path"] for o in manifest["outputs"]] == ["pay-once.mp4"]
        assert (folder / "pay-once.mp4").stat().st_size > 0


@pytest.fixture
def progress_lines() -> Iterator[list[progress.ProgressEvent]]:
    seen: list[progress.ProgressEvent] = []
    progress.subscribe(seen.append)
    yield seen
    progress.unsubscribe(seen.append)


def _service_sha256(emu: Emu, job_id: str) -> str:
    job = emu.http.get(f"/avatar/batchsyntheses/{job_id}", params={"api-version": "2024-08-01"})
    url = job.json()["outputs"]["result"]
    return hashlib.sha256(emu.http.get(url).content).hexdigest()


def test_a_corrupted_cache_is_named_and_fetched_again(
    emu: Emu, tmp_path: Path, progress_lines: list[progress.ProgressEvent]
) -> None:
    script = tmp_path / "pay-once.yaml"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    opts = RunOptions(out_dir=str(out), poll_interval_s=0.2, postprocess=False)
    [first] = script_to_video(str(script), _target(emu), opts)
    scene = json.loads(Path(first.manifest).read_text())["scenes"][0]
    cached = next((out / ".cache" / "jobs" / scene["job_id"]).glob("0001.mp4"))
    data = bytearray(cached.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 40] = bytes(b ^ 0xFF for b in data[middle : middle + 40])
    cached.write_bytes(bytes(data))  # same size, other bytes
    before = _counters(emu)

    [second] = script_to_video(str(script), _target(emu), opts)

    created, downloads = _counters(emu)
    assert created == before[0], "the service still had the job: nothing is rendered again"
    assert downloads == before[1] + 1, "only the damaged video is fetched again"
    service = _service_sha256(emu, scene["job_id"])
    republished = json.loads(Path(second.manifest).read_text())["scenes"][0]
    assert republished["video"]["sha256"] == service == scene["video"]["sha256"]
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == service
    named = [e for e in progress_lines if e.stage == "info" and str(cached) in e.detail]
    assert named and "checksum" in named[0].detail, [e.detail for e in progress_lines]


def test_a_store_in_blob_is_shared_by_workers(
    emu: Emu, tmp_path: Path, azurite: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVATARPIPE_BLOB_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("AVATARPIPE_BLOB_CONTAINER", f"store-{uuid.uuid4().hex[:8]}")
    first = synthesize(_request(tmp_path / "worker1", "shared"), _target(emu))
    before = _counters(emu)
    assert before == (2, 2)

    second = synthesize(_request(tmp_path / "worker2", "shared"), _target(emu))

    assert _counters(emu) == before, "the second worker paid for nothing"
    assert [v.sha256 for v in second.videos] == [v.sha256 for v in first.videos]
    for video in second.videos:
        path = Path(video.path)
        assert path.is_relative_to(tmp_path / "worker2")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == video.sha256
