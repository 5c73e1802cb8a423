"""Benchmark re-verifying a stored video before reuse: memory stays flat for any size.

Before a run reuses a stored video it re-hashes the file against its recorded SHA-256
(:meth:`avatarpipe.batch.store.ResultStore.verify`, streamed by :mod:`avatarpipe.hashing`). This
writes a 2 MB and a ``--mb`` MB (200 by default) file, records both in a local result store, and
measures ``verify`` of each under ``tracemalloc`` (peak Python allocations) and the wall time.
For scale, the same peak for reading the large file whole (``sha256(path.read_bytes())``), which
is what a naive check would cost. Target: the large verify's peak within 1 MB of the small one's.

Run: ``uv run python benchmarks/store.py [--mb 200]``. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from avatarpipe.batch.store import ResultStore, StoredJob, StoredVideo


def _write(path: Path, mb: int) -> StoredVideo:
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with path.open("wb") as fh:
        for _ in range(mb):
            fh.write(block)
            digest.update(block)
    return StoredVideo(name=path.name, size=mb << 20, sha256=digest.hexdigest())


def _measure(store: ResultStore, job: StoredJob) -> tuple[float, float]:
    """Peak traced MB and seconds of one ``verify``."""
    tracemalloc.start()
    started = time.perf_counter()
    problems = store.verify(job)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert problems == [], problems
    return peak, seconds


def main() -> None:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="avatarpipe-store-bench-") as tmp:
        store = ResultStore(Path(tmp))
        jobs = {}
        for label, mb in (("small", 2), ("large", args.mb)):
            job_id = f"ap-bench-{label}"
            video = _write(store.video_path(job_id, "0001.mp4"), mb)
            jobs[label] = StoredJob(job_id=job_id, videos=[video], stored_at=datetime.now(UTC))
            store.put(jobs[label])
        _measure(store, jobs["small"])  # warm-up: imports, first-open costs
        small_peak, small_s = _measure(store, jobs["small"])
        large_peak, large_s = _measure(store, jobs["large"])
        tracemalloc.start()
        hashlib.sha256(store.video_path("ap-bench-large", "0001.mp4").read_bytes()).hexdigest()
        whole_peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    figures = {
        "large_mb": args.mb,
        "verify_peak_mb_small": round(small_peak, 3),
        "verify_peak_mb_large": round(large_peak, 3),
        "verify_peak_delta_mb": round(large_peak - small_peak, 3),
        "read_whole_peak_mb_large": round(whole_peak, 1),
        "verify_s_small": round(small_s, 3),
        "verify_s_large": round(large_s, 3),
        "verify_mb_per_s": round(args.mb / large_s, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
