"""Benchmark scale-out: the makespan of 12 ad-hoc runs on 1 worker and on 3, and the start-up.

Starts the scale-out stack (``avatarpipe.cli.stack.Stack``: PostgreSQL, a Prefect server on it,
the process pool, the emulator with the placeholder renderer and no modelled delay, Azurite) with
1 worker, submits 12 ad-hoc runs of 2 to 4 scenes at once and times until all 12 are complete;
then the same with 3 workers (4 runs at once per worker, a shared budget of ``--budget``
requests a minute). Prints the stack's start-up time, both makespans and their ratio. On a
2-core machine the post-processing and each run's Python start-up compete for the same cores,
so the ratio shows the orchestration overhead more than a gain; on separate machines each
worker brings its own cores.

Run: ``uv run python benchmarks/scale.py [--budget 40]``. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "scale"))

from scale_kit import scale_stack, submit, wait_final, write_scripts  # noqa: E402


def _makespan(workers: int, budget: float, root: Path) -> tuple[float, float]:
    """(start-up seconds, makespan seconds of 12 runs) with ``workers`` workers."""
    scripts = write_scripts(root / "scripts", 12, prefix=f"w{workers}x")
    started = time.monotonic()
    with scale_stack(root, workers, budget) as stack:
        startup = time.monotonic() - started
        api = stack.urls["api"]
        t0 = time.monotonic()
        ids = [
            submit(api, "adhoc", {"script_path": str(p), "options": {"poll_interval_s": 0.5}})
            for p in scripts
        ]
        runs = wait_final(api, ids, timeout_s=1200)
        makespan = time.monotonic() - t0
        states = {r["state"]["type"] for r in runs.values()}
        assert states == {"COMPLETED"}, states
    return startup, makespan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=40.0, help="requests a minute")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        startup1, one = _makespan(1, args.budget, Path(tmp) / "one")
        print(f"1 worker: start-up {startup1:.1f} s, 12 runs in {one:.1f} s", flush=True)
        startup3, three = _makespan(3, args.budget, Path(tmp) / "three")
        print(f"3 workers: start-up {startup3:.1f} s, 12 runs in {three:.1f} s", flush=True)
    print(
        json.dumps(
            {
                "runs": 12,
                "budget_per_minute": args.budget,
                "startup_1_worker_s": round(startup1, 1),
                "startup_3_workers_s": round(startup3, 1),
                "makespan_1_worker_s": round(one, 1),
                "makespan_3_workers_s": round(three, 1),
                "speedup_3_over_1": round(one / three, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
