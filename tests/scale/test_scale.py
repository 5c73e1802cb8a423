"""Scale-out for real: PostgreSQL, a Prefect server on it, a process pool and three workers.

One stack for the module (``avatarpipe.cli.stack.Stack`` with ``workers=3, postgres=True``): the
workers share only the Prefect API, the emulator and one Azurite container, each in a folder of
its own. Twelve ad-hoc runs at once under one request budget; a nightly run on one worker after
another rendered part of the source; a worker killed with SIGKILL mid-run, its run rerun by
another worker. Everything is checked on the emulator's counters, the container and the
workers' own output folders.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from avatarpipe.cli.stack import Stack
from avatarpipe.speech.emulator_admin import EmulatorAdminClient
from avatarpipe.storage import azurite
from avatarpipe.storage.blob import BlobStore

sys.path.insert(0, str(Path(__file__).parent))
from scale_kit import (  # noqa: E402
    flow_run,
    published,
    scale_stack,
    script_text,
    submit,
    wait_final,
    write_scripts,
)

pytestmark = [pytest.mark.azurite, pytest.mark.slow]

WORKERS = 3
BUDGET = 40  # requests a minute, shared by every run of every worker
FAST = {"poll_interval_s": 0.5}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, azurite_binary: None) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("scale")
    started = time.monotonic()
    with scale_stack(root, WORKERS, BUDGET) as running:
        print(
            f"scale stack ({WORKERS} workers, PostgreSQL) up in {time.monotonic() - started:.1f} s"
        )
        with EmulatorAdminClient(running.urls["emulator"]) as admin:
            # The emulator answers 429 to any request over the budget: none may come.
            admin.configure(rate_limit_per_minute=BUDGET)
        yield running


@pytest.fixture(scope="module")
def azurite_binary(azurite: object) -> None:
    """The session's Azurite fixture installs the binary (the stack starts its own instance)."""


def _admin(stack: Stack) -> EmulatorAdminClient:
    return EmulatorAdminClient(stack.urls["emulator"])


def _store(stack: Stack) -> BlobStore:
    port = urlsplit(stack.urls["azurite"]).port
    assert port is not None
    store = BlobStore.from_connection_string(azurite.connection_string(port), "avatarpipe")
    store.ensure_container()
    return store


def _outputs(stack: Stack) -> dict[int, dict[str, list[Path]]]:
    return {i: published(stack.worker_dir(i) / "outputs") for i in range(1, WORKERS + 1)}


def _max_in_window(times: list[float], window_s: float = 60.0) -> int:
    best, start = 0, 0
    for end, stamp in enumerate(times):
        while stamp - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_twelve_runs_at_once_share_the_budget_and_spread_over_workers(
    stack: Stack, tmp_path: Path
) -> None:
    scripts = write_scripts(tmp_path / "adhoc", 12, prefix="a")
    with _admin(stack) as admin:
        before = admin.stats()
    started = time.monotonic()
    ids = [
        submit(stack.urls["api"], "adhoc", {"script_path": str(p), "options": FAST})
        for p in scripts
    ]
    runs = wait_final(stack.urls["api"], ids, timeout_s=420)
    makespan = time.monotonic() - started
    assert {r["state"]["type"] for r in runs.values()} == {"COMPLETED"}, {
        r["name"]: r["state"]["message"] for r in runs.values()
    }
    with _admin(stack) as admin:
        stats = admin.stats()
    new_jobs = {
        j: n for j, n in stats["puts_by_job_id"].items() if j not in before["puts_by_job_id"]
    }
    print(
        f"12 runs on {WORKERS} workers: makespan {makespan:.1f} s; jobs {len(new_jobs)}; "
        f"requests {stats['requests_by_route']}; 429s {stats['rate_limited']}"
    )
    assert len(new_jobs) >= 12 and set(new_jobs.values()) == {1}, "each job created once"
    assert stats["jobs_created"] - before["jobs_created"] == len(new_jobs)
    assert stats["rate_limited"] == 0, (
        "no request over the shared budget (the emulator enforces it)"
    )
    if "request_times" in stats:  # the emulator's arrival log, where it has one
        times = sorted(t[0] for t in stats["request_times"])
        assert _max_in_window(times) <= BUDGET
    slugs = {f"a-{i:02d}-news" for i in range(12)}
    names = _store(stack).list_names("")
    for slug in slugs:
        videos = [n for n in names if n.startswith(f"{slug}/") and n.endswith(f"/{slug}.mp4")]
        assert len(videos) == 1, f"{slug}: {videos}"
    by_worker = {i: set(found) & slugs for i, found in _outputs(stack).items()}
    assert set().union(*by_worker.values()) == slugs
    assert sum(len(v) for v in by_worker.values()) == 12, "each script rendered by one worker"
    assert len([i for i, v in by_worker.items() if v]) >= 2, f"runs spread: {by_worker}"


def test_nightly_on_one_worker_renders_only_what_another_did_not(stack: Stack) -> None:
    store = _store(stack)
    for i in (1, 2):
        store.write_bytes(
            f"inbox/n{i}.yaml", script_text(f"N{i} news", 2).encode(), content_type="text/yaml"
        )
    params: dict[str, Any] = {"source": "blob:inbox", "options": FAST}
    first = submit(stack.urls["api"], "nightly", params, queue="worker-1")
    assert wait_final(stack.urls["api"], [first], 300)[first]["state"]["type"] == "COMPLETED"
    with _admin(stack) as admin:
        between = admin.stats()
    for i in (3, 4):
        store.write_bytes(
            f"inbox/n{i}.yaml", script_text(f"N{i} news", 2).encode(), content_type="text/yaml"
        )
    second = submit(stack.urls["api"], "nightly", params, queue="worker-2")
    assert wait_final(stack.urls["api"], [second], 300)[second]["state"]["type"] == "COMPLETED"
    with _admin(stack) as admin:
        after = admin.stats()
    outputs = _outputs(stack)
    assert {"n1-news", "n2-news"} <= set(outputs[1])
    assert {s for s in outputs[2] if s.startswith("n")} == {"n3-news", "n4-news"}, (
        "the second worker rendered only the scripts the first had not"
    )
    new = set(after["puts_by_job_id"]) - set(between["puts_by_job_id"])
    assert len(new) == 2 and after["jobs_created"] - between["jobs_created"] == 2, (
        "two new scripts, one packed job each, nothing of the first two paid again"
    )


def _runner_of(stack: Stack, run: dict[str, Any]) -> tuple[int, int]:
    """(worker index, flow-run process pid) of a running flow run."""
    pid = int(str(run["infrastructure_pid"]).rsplit(":", 1)[-1])
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    workers = {c.record.pid: c.record.name for c in stack.children}
    return int(workers[ppid].removeprefix("worker-")), pid


def test_a_killed_workers_run_is_rerun_by_another_without_new_jobs(
    stack: Stack, tmp_path: Path
) -> None:
    [script] = write_scripts(tmp_path / "crash", 1, prefix="k")
    with _admin(stack) as admin:
        admin.configure(time_scale=50.0)  # the job keeps rendering while its worker dies
        run_id = submit(stack.urls["api"], "adhoc", {"script_path": str(script), "options": FAST})
        deadline = time.monotonic() + 240
        jobs: set[str] = set()
        before = set(admin.stats()["puts_by_job_id"])
        while time.monotonic() < deadline and not jobs:
            jobs = set(admin.stats()["puts_by_job_id"]) - before
            time.sleep(0.5)
        assert jobs, "the run never submitted its job"
        run = flow_run(stack.urls["api"], run_id)
        assert run["state"]["type"] == "RUNNING", run["state"]
        worker, pid = _runner_of(stack, run)
        victim = next(c for c in stack.children if c.record.name == f"worker-{worker}")
        os.killpg(victim.record.pid, signal.SIGKILL)  # the machine is gone: worker and run
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        victim.popen.wait()
        created = admin.stats()["jobs_created"]
        admin.configure(time_scale=0.0)
        # `Crashed` is not the end here: the automation puts it back to `Scheduled`.
        settled = {"COMPLETED", "FAILED", "CANCELLED"}
        final = wait_final(stack.urls["api"], [run_id], timeout_s=360, final=settled)[run_id]
        stats = admin.stats()
    print(
        f"killed worker-{worker}; run {run_id}: {final['state']['name']}, run_count {final['run_count']}"
    )
    assert final["state"]["type"] == "COMPLETED", final["state"]
    assert final["run_count"] >= 2, "it ran again"
    assert stats["jobs_created"] == created, "the rerun re-attached: 0 new jobs"
    assert all(stats["puts_by_job_id"][j] == 1 for j in jobs)
    rerun_by = [i for i, found in _outputs(stack).items() if "k-00-news" in found]
    assert rerun_by and worker not in rerun_by, f"finished by another worker: {rerun_by}"
