"""The result store on its own: records, re-verification, attempts, and the per-work lock."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from avatarpipe.batch.store import StoredJob, StoredVideo, open_result_store
from avatarpipe.settings import Settings

WORK = "ab" * 32


def _stored(root: Path, job_id: str, data: bytes) -> StoredJob:
    (root / job_id).mkdir(parents=True)
    (root / job_id / "0001.mp4").write_bytes(data)
    video = StoredVideo(name="0001.mp4", size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return StoredJob(job_id=job_id, videos=[video], stored_at=datetime.now(UTC), work_hash=WORK)


def test_records_attempts_and_reverification(tmp_path: Path) -> None:
    store = open_result_store(Settings(output_dir=tmp_path))
    assert store.root == tmp_path / ".cache" / "jobs"
    store.note_failure(WORK, "ap-x-r1", 1, "InternalServerError: boom", transient=True)
    record = store.work(WORK)
    assert record is not None and (record.status, record.attempt) == ("Failed", 1)
    assert store.find_work(WORK) is None

    job = _stored(store.root, "ap-x-r2", b"video bytes")
    job.attempt = 2
    store.put(job)
    assert store.job_ids() == {"ap-x-r2"}
    assert store.find_work(WORK) == job
    store.note_failure(WORK, "ap-x-r1", 1, "late news", transient=True)
    assert store.find_work(WORK) == job, "a success is never overwritten by a failure"
    assert store.verify(job) == []

    path = store.video_path("ap-x-r2", "0001.mp4")
    path.write_bytes(b"video bytez")  # same size
    [problem] = store.verify(job)
    assert problem.path == str(path) and "checksum" in problem.reason
    assert not path.exists(), "a damaged copy is discarded"
    [problem] = store.verify(job)
    assert problem.reason == "missing"


def test_the_lock_of_a_work_is_held_against_other_processes(tmp_path: Path) -> None:
    store = open_result_store(Settings(), root=tmp_path)
    probe = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError: sys.exit(3)\n"
    )
    lock_file = tmp_path / ".locks" / f"{WORK}.lock"
    with store.lock([WORK, WORK]):
        held = subprocess.run([sys.executable, "-c", probe, str(lock_file)], check=False)  # noqa: S603
        assert held.returncode == 3
    free = subprocess.run([sys.executable, "-c", probe, str(lock_file)], check=False)  # noqa: S603
    assert free.returncode == 0
