"""One request budget shared by several runs, counted where it matters: at the emulator.

Each "run" is a thread driving real requests through the real client (``open_speech``) with the
real budget (``PrefectRateBudget``) on the session's Prefect API, against a real emulator; the
emulator stamps every Azure API request when it arrives (``request_times`` in its stats).

The budget is counted over a test-only window of 12 s instead of 60 s
(``RequestPace(6, window_s=12)``): production builds ``RequestPace(N)`` and takes exactly the same
code path (the same limit of one slot, a decay of ``N / (W + W/60)``, the same wait loop), only
five times faster, so three windows take 36 s rather than three minutes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flow_emu import Emu
from prefect.client.orchestration import get_client

from avatarpipe import progress
from avatarpipe.connect import open_speech
from avatarpipe.settings import load_settings
from avatarpipe.speech.emulator_admin import max_in_window
from avatarpipe.speech.ratelimit import RequestPace
from flows.connections import PrefectRateBudget, ensure_rate_limit

pytestmark = pytest.mark.usefixtures("prefect_harness")

WINDOW_S = 12.0  # the test-only window (production: 60 s)


@pytest.fixture
def limit_name() -> Iterator[str]:
    """A fresh Prefect limit name, deleted afterwards."""
    name = f"budget-{uuid.uuid4().hex[:8]}"
    yield name
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(name)


def _drive(emu: Emu, name: str, pace: RequestPace, seconds: float) -> Callable[[], None]:
    """One run: list the jobs again and again through the budget for ``seconds``."""

    def run() -> None:
        budget = PrefectRateBudget(name, pace)
        until = time.monotonic() + seconds
        with open_speech(
            load_settings(), endpoint=emu.url, backend="emulator", budget=budget
        ) as clients:
            clients.close_with(budget.close)
            while time.monotonic() < until:
                clients.batch.list_syntheses_page()

    return run


def _run_all(runs: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def guarded(run: Callable[[], None]) -> None:
        try:
            run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors


def _arrivals(emu: Emu) -> list[float]:
    stats = emu.stats()
    statuses = {status for route in stats["requests_by_route"].values() for status in route}
    assert statuses == {"200"}, stats["requests_by_route"]
    return sorted(at for at, _route, _status in stats["request_times"])


def _per_window(times: list[float]) -> float:
    """The sustained rate: requests per window between the first arrival and the last."""
    return (len(times) - 1) / (times[-1] - times[0]) * WINDOW_S


def _limit(name: str) -> tuple[int, float]:
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
    return limit.limit, limit.slot_decay_per_second


def test_three_runs_share_one_budget(make_emu: Any, limit_name: str) -> None:
    """Three runs for three windows: never over N in any window, and at least 90 % of N."""
    n = 6
    pace = RequestPace(n, window_s=WINDOW_S)
    emu = make_emu()
    ensure_rate_limit(limit_name, pace)
    _run_all([_drive(emu, limit_name, pace, 3 * WINDOW_S) for _ in range(3)])

    times = _arrivals(emu)
    busiest = max_in_window(times, WINDOW_S)
    rate = _per_window(times)
    print(
        f"3 runs, {n}/{WINDOW_S:g} s: {len(times)} requests, busiest window {busiest}, "
        f"sustained {rate:.2f} per window ({rate / n:.1%})"
    )
    assert busiest <= n
    assert rate >= 0.9 * n
    assert _limit(limit_name) == (1, pytest.approx(pace.slot_decay_per_second))


def test_the_limit_follows_the_setting(make_emu: Any, limit_name: str) -> None:
    """A run at one rate, then faster, then slower: the shared limit takes each setting."""
    emu = make_emu()
    slow, fast, slower = (RequestPace(n, window_s=WINDOW_S) for n in (6, 12, 3))
    notices: list[str] = []

    def listen(event: progress.ProgressEvent) -> None:
        if event.stage == "info":
            notices.append(event.detail)

    ensure_rate_limit(limit_name, slow)
    _run_all([_drive(emu, limit_name, slow, WINDOW_S / 2)])
    first = len(_arrivals(emu))

    ensure_rate_limit(limit_name, fast)  # e.g. AVATARPIPE_REQUESTS_PER_MINUTE raised between runs
    assert _limit(limit_name) == (1, pytest.approx(fast.slot_decay_per_second))
    _run_all([_drive(emu, limit_name, fast, WINDOW_S / 2)])
    fast_times = _arrivals(emu)[first:]
    assert max_in_window(fast_times, WINDOW_S) <= 12
    assert _per_window(fast_times) > 1.5 * 6, "still at the old setting (at most 6 a window)"

    second = len(_arrivals(emu))
    ensure_rate_limit(limit_name, slower)
    assert _limit(limit_name) == (1, pytest.approx(slower.slot_decay_per_second))
    progress.subscribe(listen)
    try:
        _run_all([_drive(emu, limit_name, slower, WINDOW_S * 1.2)])
    finally:
        progress.unsubscribe(listen)
    times = _arrivals(emu)
    later = times[second:]
    assert len(later) >= 2
    for at in later:  # every window holding a request at the slower rate holds at most 3
        assert sum(1 for t in times if at - WINDOW_S < t <= at) <= 3, (at, times)
    # The first request at the slower rate waited out the faster run's window, and said so once.
    assert notices and notices[0].startswith("waiting 1") and notices[0].endswith("3/12 s")
