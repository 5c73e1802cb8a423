"""Crash and resume: a real flow run in a child process, SIGKILLed at three stages, then rerun.

The emulator runs in the test process, so it outlives the child. Each test starts the
``synthesize`` flow in a child (``tests/helpers/crash_runner.py``), waits until the run is in
the stage under test (emulator counters or the child's progress events), kills it with SIGKILL
(no ``finally``, no atexit: like a power cut), then reruns the same work in a new child and checks
that the rerun completes, re-attaches to the jobs the first run created (every job id PUT exactly
once on the emulator) and does not download again what was already verified.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flow_emu import Emu

SCENES = 12

CacheCheck = Callable[[Path], dict[str, dict[str, Any]]]


def _planned_ids(outcome: dict[str, Any]) -> set[str]:
    return {job["job_id"] for job in outcome["jobs"]}


def _assert_resumed(
    emu: Emu, outcome: dict[str, Any], cache: Path, check_cache: CacheCheck
) -> dict[str, Any]:
    """What every resumed run must show; returns the emulator's stats."""
    assert [v["key"] for v in outcome["videos"]] == [f"scene-{i:03d}" for i in range(1, SCENES + 1)]
    stats = emu.stats()
    puts: dict[str, int] = stats["puts_by_job_id"]
    assert all(count == 1 for count in puts.values()), f"a job was created twice: {puts}"
    assert set(puts) == _planned_ids(outcome), (
        "every job of the rerun is one the emulator created once"
    )
    assert stats["jobs_created"] == SCENES
    markers = check_cache(cache)
    assert len(markers) == SCENES
    return stats


def test_killed_while_submitting(
    make_emu: Any, flow_child: Any, tmp_path: Path, check_cache: CacheCheck, wait_until: Any
) -> None:
    emu = make_emu()
    # Every API request takes 0.3 s: submitting 12 jobs one PUT at a time takes about 4 s.
    emu.configure(faults={"p_slow": 1.0, "slow_s": 0.3})
    cache = tmp_path / "cache"
    first = flow_child(emu, cache, "crash-submit", SCENES)
    wait_until(lambda: len(emu.stats()["puts_by_job_id"]) >= 3, 120, "the first jobs to be created")
    first.kill()
    created_before = set(emu.stats()["puts_by_job_id"])
    assert 3 <= len(created_before) < SCENES, "killed in the middle of submitting"
    assert not any(cache.rglob("*.mp4")), "nothing was downloaded before the crash"

    emu.configure(faults={"p_slow": 0.0})
    outcome = flow_child(emu, cache, "crash-submit", SCENES).finish()

    _assert_resumed(emu, outcome, cache, check_cache)
    reattached = {j["job_id"] for j in outcome["jobs"] if not j["created"]}
    assert created_before <= reattached, "the jobs created before the crash were re-attached"
    assert all(v["downloaded"] for v in outcome["videos"])


def test_killed_while_waiting(
    make_emu: Any, flow_child: Any, tmp_path: Path, check_cache: CacheCheck, wait_until: Any
) -> None:
    emu = make_emu()
    # Jobs wait an hour in NotStarted: the run is polling when it is killed.
    emu.configure(time_scale=1.0, queue_delay_s=3600)
    cache = tmp_path / "cache"
    first = flow_child(emu, cache, "crash-wait", SCENES)
    wait_until(lambda: first.count("queued") >= SCENES, 120, "every job to be seen queued")
    wait_until(
        lambda: len(emu.stats()["requests_by_route"].get("GET /avatar/batchsyntheses", {})) > 0,
        10,
        "polls",
    )
    polls_before = sum(emu.stats()["requests_by_route"]["GET /avatar/batchsyntheses"].values())
    wait_until(
        lambda: (
            sum(emu.stats()["requests_by_route"]["GET /avatar/batchsyntheses"].values())
            > polls_before
        ),
        30,
        "another polling round",
    )
    first.kill()
    stats = emu.stats()
    assert len(stats["puts_by_job_id"]) == SCENES
    assert stats["jobs_by_status"].get("NotStarted") == SCENES, stats["jobs_by_status"]
    assert stats["downloads_by_kind"]["video"] == 0

    emu.configure(time_scale=0.0)  # the queue delay is over: the jobs render now
    outcome = flow_child(emu, cache, "crash-wait", SCENES).finish()

    after = _assert_resumed(emu, outcome, cache, check_cache)
    assert not any(j["created"] for j in outcome["jobs"]), "the rerun re-attached to every job"
    assert after["downloads_by_kind"]["video"] == SCENES


def test_killed_while_downloading(
    make_emu: Any, flow_child: Any, tmp_path: Path, check_cache: CacheCheck, wait_until: Any
) -> None:
    emu = make_emu()
    # One job renders at a time, about half a second each: downloads trickle in for ~6 s.
    emu.configure(time_scale=1.0, queue_delay_s=0, render_s_per_video_s=0.3, max_running=1)
    cache = tmp_path / "cache"
    first = flow_child(emu, cache, "crash-download", SCENES)
    wait_until(lambda: first.count("downloaded") >= 3, 120, "the first downloads")
    first.kill()
    verified = {p.parent.name for p in cache.rglob("*.verified.json")}
    downloads_before = emu.stats()["downloads_by_kind"]["video"]
    assert 3 <= len(verified) < SCENES, "killed in the middle of downloading"

    emu.configure(time_scale=0.0)
    outcome = flow_child(emu, cache, "crash-download", SCENES).finish()

    after = _assert_resumed(emu, outcome, cache, check_cache)
    assert not any(j["created"] for j in outcome["jobs"]), "the rerun re-attached to every job"
    fetched_again = {v["job_id"] for v in outcome["videos"] if v["downloaded"]}
    assert not fetched_again & verified, "a verified video was downloaded again"
    kept = {v["job_id"] for v in outcome["videos"] if not v["downloaded"]}
    assert kept == verified
    # The emulator saw exactly one more video download per video not verified before the crash.
    assert after["downloads_by_kind"]["video"] - downloads_before == SCENES - len(verified)


pytestmark = pytest.mark.usefixtures("prefect_harness")
