"""Chaos: 50 scenes through an emulator that fails a fifth of all requests, jobs and URLs.

The emulator injects, seeded, 5 % each of 429, 500, 503 and dropped connections on every Azure
API request, fails 10 % of the jobs it starts (``InternalServerError``) and mints 10 % of result
URLs already expired. The run must still end with 50 verified videos, no job id created twice
(the emulator's own per-id PUT counter), every resubmission under its own derived id, and
nothing partial or unverified in the download cache.

``max_resubmits`` is raised to 6 for this run: with 10 % of jobs failing, the default (2) leaves a
one-in-a-thousand chance per scene (5 % per run of 50) that one scene's job fails three times in a
row, which is the run *correctly* giving up, not a bug. With 6 the chance is 1e-7 per scene.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from crash_runner import build_request

from flows.connections import SpeechTarget
from flows.synthesize import synthesize

pytestmark = pytest.mark.usefixtures("prefect_harness")

SCENES = 50
FAULTS = {
    "seed": 2024,
    "p_429": 0.05,
    "p_500": 0.05,
    "p_503": 0.05,
    "p_reset": 0.05,
    "p_job_fail": 0.10,
    "p_expired_url": 0.10,
}


def test_fifty_scenes_survive_a_fifth_of_everything_failing(
    make_emu: Any, tmp_path: Path, check_cache: Callable[[Path], dict[str, dict[str, Any]]]
) -> None:
    emu = make_emu()
    emu.configure(faults=FAULTS)
    cache = tmp_path / "outputs" / ".cache" / "jobs"
    request = build_request(
        "chaos", SCENES, cache, poll_interval_s=0.2, timeout_s=600, max_resubmits=6
    )
    target = SpeechTarget(
        endpoint=emu.url, backend="emulator", requests_per_minute=60000, rate_limit_name="rl-chaos"
    )

    outcome = synthesize(request, target)

    # 50 verified videos, one per scene, in order.
    assert [v.key for v in outcome.videos] == [f"scene-{i:03d}" for i in range(1, SCENES + 1)]
    markers = check_cache(tmp_path / "outputs")
    for video in outcome.videos:
        rel = str(Path(video.path).relative_to(tmp_path / "outputs"))
        assert markers[rel]["sha256"] == video.sha256
        assert markers[rel]["size_bytes"] == video.size_bytes
    assert len({v.job_id for v in outcome.videos}) == SCENES

    # The faults really happened, all of them.
    stats = emu.stats()
    injected = stats["faults_injected"]
    for kind in ("429", "500", "503", "reset", "job_fail", "expired_url"):
        assert injected.get(kind, 0) > 0, f"no {kind} fault was injected: {injected}"

    # No job id was ever created twice, and every job the run knows of was created exactly once.
    puts: dict[str, int] = stats["puts_by_job_id"]
    assert puts and all(count == 1 for count in puts.values()), {
        k: c for k, c in puts.items() if c != 1
    }
    assert stats["jobs_created"] == len(puts)
    assert set(puts) == {j.job_id for j in outcome.jobs}

    # Per scene: exactly one job per attempt, resubmissions only after a failure, under -rN ids.
    by_scene: dict[str, list[Any]] = {}
    for job in outcome.jobs:
        assert len(job.scene_keys) == 1
        by_scene.setdefault(job.scene_keys[0], []).append(job)
    assert len(by_scene) == SCENES
    for key, jobs in by_scene.items():
        jobs.sort(key=lambda j: j.attempt)
        assert [j.attempt for j in jobs] == list(range(len(jobs))), key
        assert all(j.status == "Failed" for j in jobs[:-1]), key
        assert jobs[-1].status == "Succeeded", key
        for job in jobs[1:]:
            assert job.job_id == f"{jobs[0].job_id}-r{job.attempt}"
    failed = Counter(j.status for j in outcome.jobs)["Failed"]
    assert failed == injected["job_fail"]
    assert stats["jobs_created"] == SCENES + failed
