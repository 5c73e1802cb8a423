"""Several workers: three flow runs in three processes share one request budget.

The budget is the Prefect global concurrency limit the runs set to N requests per minute (one
slot, spaced ``61 / N`` s: see ``avatarpipe.speech.ratelimit``). The emulator is set to the same
N per minute (a sliding window), and its jobs wait 10 s in the queue. Each run polls every 0.3 s,
so alone it would ask for ~200 requests a minute; together, without a shared budget, they send
well over N in those 10 s (checked by hand: the emulator answers 429s until a run gives up). The
emulator must see at most N requests in any 60 s and answer no 429 at all (none is injected).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flow_emu import Emu
from prefect.client.orchestration import get_client

pytestmark = pytest.mark.usefixtures("prefect_harness")

N_PER_MINUTE = 60
RUNS = 3
SCENES = 4
QUEUE_S = 10.0  # every job waits 10 s before it renders: the runs keep polling meanwhile


def _delete_budget(name: str) -> None:
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(name)


def test_three_runs_share_one_budget(
    make_emu: Any, flow_child: Any, tmp_path: Any, log_requests: Any
) -> None:
    emu: Emu = make_emu(rate_limit_per_minute=N_PER_MINUTE, time_scale=1.0, queue_delay_s=QUEUE_S)
    log = log_requests(emu)
    budget = f"rl-workers-{uuid.uuid4().hex[:8]}"
    try:
        runs = [
            flow_child(
                emu,
                tmp_path / f"cache{n}",
                f"worker-{n}",
                SCENES,
                poll=0.3,
                rate_limit_name=budget,
                rpm=N_PER_MINUTE,
            )
            for n in range(RUNS)
        ]
        outcomes = [run.finish(timeout_s=240) for run in runs]
    finally:
        _delete_budget(budget)

    for outcome in outcomes:
        assert len(outcome["videos"]) == SCENES
    stats = emu.stats()
    assert stats["rate_limited"] == 0, "the emulator refused requests over its limit"
    statuses = {status for route in stats["requests_by_route"].values() for status in route}
    assert "429" not in statuses, stats["requests_by_route"]
    assert stats["faults_injected"] == {}
    assert all(count == 1 for count in stats["puts_by_job_id"].values())
    assert stats["jobs_created"] == RUNS * SCENES

    # Every request the clients made reached the emulator, and at most N fit in any minute.
    made = sum(outcome["service_requests"] for outcome in outcomes)
    assert len(log.times()) == made
    assert made > 2 * RUNS, "the runs made more than one request each: the budget was in play"
    assert log.max_in_window(60.0) <= N_PER_MINUTE
