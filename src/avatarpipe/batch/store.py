"""The result store: the one home of results already paid for.

Every verified video is kept under the id of the job that made it, with its size and SHA-256,
and every job's fate is remembered per *work* (the hash its id is derived from, see
:mod:`avatarpipe.batch.plan`). A run asks the store before any request that costs money: a
work whose videos are verified here is neither PUT nor polled, whatever the service still holds
(its jobs may be deleted by ``--delete-jobs`` or expired after their time to live); a work whose
last attempt failed goes on from the next attempt id.

Layout (``<root>`` is ``outputs/.cache/jobs`` by default)::

    <root>/<job_id>/0001.mp4                the verified video (post-processing reads it)
    <root>/<job_id>/0001.mp4.verified.json  size, SHA-256, duration (written by batch.fetch)
    <root>/<job_id>/job.json                the StoredJob, once every video is verified
    <root>/.work/<work_hash>.json           the work's last attempt: job id, status, error
    <root>/.locks/<job_id>.lock             flock held while a job id is looked up and created

With a blob container configured (:class:`BlobResultStore`) the same records and videos also go
to the container under ``.avatarpipe/results/`` (``jobs/<job_id>/...``, ``work/<hash>.json``):
every worker of a deployment reads them, and a worker with an empty output folder copies a
verified video from the container (checked against the recorded SHA-256) instead of paying for
it again. ``job.json`` is written after the videos, and the work record after ``job.json``, so a
record always points at complete files.

Reuse re-verifies: :meth:`ResultStore.verify` re-hashes each working copy (streaming, in 1 MiB
chunks: flat memory for any size) against the recorded checksum. A mismatch is named (which
file, what was expected and found) and the copy is discarded; the run then fetches it again from
the service while the service still has the job, or renders it again.

Locks: :meth:`ResultStore.lock` takes an exclusive ``flock`` per job id under ``<root>/.locks``
while the run looks its jobs up and creates the missing ones, so two runs of the same work on
one machine (or on machines sharing the output folder over a file system with working
``flock``) create each job once: the second finds the first's job and re-attaches. Workers on
different machines that share only the blob container are arbitrated by the service itself (a
second PUT of an existing id is refused and the run re-attaches); a blob lease on
``.avatarpipe/results/locks/<job_id>`` is the natural cross-machine lock should that ever be
needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from avatarpipe.errors import DownloadError, StorageError
from avatarpipe.hashing import file_digest
from avatarpipe.settings import Settings
from avatarpipe.storage.blob import BlobStore

__all__ = [
    "BlobResultStore",
    "Problem",
    "ResultStore",
    "StoredJob",
    "StoredVideo",
    "WorkRecord",
    "open_result_store",
]

log = logging.getLogger(__name__)

BLOB_PREFIX = ".avatarpipe/results/"
"""Where the shared store lives in the blob container."""

_JOB_FILE = "job.json"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class StoredVideo(BaseModel):
    """One verified video of a stored job.

    Attributes:
        name: Its file name in the job's folder (``0001.mp4``).
        size: Its size in bytes.
        sha256: Its SHA-256 (hex).
        index: Its 1-based input number in the job.
        duration_ms: Its duration as probed.
    """

    name: str
    size: int
    sha256: str
    index: int = 1
    duration_ms: int = 0


class StoredJob(BaseModel):
    """A job whose videos are all verified.

    Attributes:
        job_id: The job's id.
        videos: Its videos, in input order.
        stored_at: When it was recorded.
        work_hash: The hash of the work it made (its id without the attempt).
        attempt: The attempt that made it.
        billing_seconds: Avatar seconds the service billed for it, when known.
    """

    job_id: str
    videos: list[StoredVideo]
    stored_at: datetime
    work_hash: str | None = None
    attempt: int = 0
    billing_seconds: int | None = None


class WorkRecord(BaseModel):
    """The last attempt at one work (one job's inputs and options).

    Attributes:
        work_hash: The work.
        job_id: The id of its last attempt.
        attempt: That attempt's number.
        status: ``Succeeded`` (the job is stored) or ``Failed``.
        error: The service's error for a failure (``code: message``).
        transient: Whether the failure is worth a resubmission without being asked.
        updated_at: When the record was written.
    """

    work_hash: str
    job_id: str
    attempt: int = 0
    status: Literal["Succeeded", "Failed"]
    error: str | None = None
    transient: bool = True
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class Problem(BaseModel):
    """A stored video that cannot be reused as it is.

    Attributes:
        job_id: Its job.
        name: Its file name (``0001.mp4``).
        path: The working copy.
        reason: What is wrong (missing, size or checksum mismatch).
    """

    job_id: str
    name: str
    path: str
    reason: str


def _check_id(value: str, what: str) -> str:
    if not _SAFE_ID.match(value):
        raise StorageError(f"{what} {value!r} is not a safe name")
    return value


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{path}: {exc.strerror or exc}") from None


class ResultStore:
    """Results already paid for, in a local folder (the base of every store).

    Args:
        root: The folder (``outputs/.cache/jobs``): working copies and records.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    @property
    def where(self) -> str:
        """Where the records are kept, for messages."""
        return str(self.root)

    # ------------------------------------------------------------ paths

    def job_dir(self, job_id: str) -> Path:
        """The folder of a job's working copies."""
        return self.root / _check_id(job_id, "job id")

    def video_path(self, job_id: str, name: str) -> Path:
        """The working copy of one video of a job."""
        return self.job_dir(job_id) / _check_id(name, "file name")

    # ------------------------------------------------------------ reading

    def _read_local(self, path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"{path}: {exc.strerror or exc}") from None

    def _local(self, name: str) -> Path:
        """The local file of a record (``jobs/<id>/job.json``, ``work/<hash>.json``)."""
        kind, rest = name.split("/", 1)
        return self.root / rest if kind == "jobs" else self.root / ".work" / rest

    def _read_record(self, name: str) -> str | None:
        """A record by its name (``jobs/<job_id>/job.json``, ``work/<hash>.json``)."""
        return self._read_local(self._local(name))

    def _write_record(self, name: str, text: str) -> None:
        _write_atomic(self._local(name), text)

    def get(self, job_id: str) -> StoredJob | None:
        """What is recorded for a job (no re-hash), or ``None``.

        Raises:
            StorageError: The record could not be read.
        """
        text = self._read_record(f"jobs/{_check_id(job_id, 'job id')}/{_JOB_FILE}")
        if text is None:
            return None
        try:
            return StoredJob.model_validate_json(text)
        except ValidationError:
            log.warning("the record of job %s in %s is unreadable: ignored", job_id, self.where)
            return None

    def job_ids(self) -> set[str]:
        """Every recorded job id.

        Raises:
            StorageError: The store could not be listed.
        """
        if not self.root.is_dir():
            return set()
        return {p.parent.name for p in self.root.glob(f"*/{_JOB_FILE}")}

    def work(self, work_hash: str) -> WorkRecord | None:
        """The last attempt at a work, or ``None`` when the store never saw it.

        Raises:
            StorageError: The record could not be read.
        """
        text = self._read_record(f"work/{_check_id(work_hash, 'work hash')}.json")
        if text is None:
            return None
        try:
            return WorkRecord.model_validate_json(text)
        except ValidationError:
            return None

    def find_work(self, work_hash: str) -> StoredJob | None:
        """The stored job that made a work, if its last attempt succeeded and is recorded.

        Raises:
            StorageError: A record could not be read.
        """
        record = self.work(work_hash)
        if record is None or record.status != "Succeeded":
            return None
        return self.get(record.job_id)

    # ------------------------------------------------------------ writing

    def put(self, job: StoredJob) -> None:
        """Record a job whose videos are verified in their working copies.

        Raises:
            StorageError: The record could not be written.
        """
        self._write_record(f"jobs/{job.job_id}/{_JOB_FILE}", job.model_dump_json(indent=2))
        if job.work_hash:
            self._put_work(
                WorkRecord(
                    work_hash=job.work_hash,
                    job_id=job.job_id,
                    attempt=job.attempt,
                    status="Succeeded",
                )
            )

    def note_failure(
        self, work_hash: str, job_id: str, attempt: int, error: str | None, *, transient: bool
    ) -> None:
        """Remember that an attempt at a work failed (the next run goes on from the next one).

        A work already recorded as succeeded keeps its record.

        Raises:
            StorageError: The record could not be written.
        """
        current = self.work(work_hash)
        if current is not None and (current.status == "Succeeded" or current.attempt > attempt):
            return
        self._put_work(
            WorkRecord(
                work_hash=work_hash,
                job_id=job_id,
                attempt=attempt,
                status="Failed",
                error=error,
                transient=transient,
            )
        )

    def _put_work(self, record: WorkRecord) -> None:
        name = f"work/{_check_id(record.work_hash, 'work hash')}.json"
        self._write_record(name, record.model_dump_json(indent=2))

    # ------------------------------------------------------------ reuse

    def _materialize(self, job: StoredJob, video: StoredVideo, path: Path) -> str | None:
        """Bring a missing or damaged working copy back from a shared copy.

        Returns:
            ``None`` when the copy is whole again, else why not (``""``: no shared copy).
        """
        return ""

    def verify(self, job: StoredJob) -> list[Problem]:
        """Re-hash every working copy of a stored job against its record (streaming).

        A missing or damaged copy is fetched from the shared store when there is one; what still
        does not match is discarded and returned, named.

        Returns:
            The videos that cannot be reused (empty: every one matches).
        """
        problems = []
        for video in job.videos:
            path = self.video_path(job.job_id, video.name)
            reason = _mismatch(path, video)
            if reason is not None:
                log.warning("%s: %s", path, reason)
                shared = self._materialize(job, video, path)
                reason = None if shared is None else "; ".join(filter(None, (reason, shared)))
            if reason is not None:
                self.discard(job.job_id, video.name)
                problems.append(
                    Problem(job_id=job.job_id, name=video.name, path=str(path), reason=reason)
                )
        return problems

    def discard(self, job_id: str, name: str) -> None:
        """Remove a working copy and its marker (it will be fetched or rendered again)."""
        path = self.video_path(job_id, name)
        for item in (path, path.with_name(path.name + ".verified.json")):
            with contextlib.suppress(FileNotFoundError):
                item.unlink()

    # ------------------------------------------------------------ locks

    @contextlib.contextmanager
    def lock(self, job_ids: Iterable[str]) -> Iterator[None]:
        """Hold an exclusive ``flock`` per job id (taken in sorted order: no deadlock).

        Raises:
            StorageError: A lock file could not be opened.
        """
        folder = self.root / ".locks"
        handles = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for job_id in sorted(set(job_ids)):
                fd = os.open(
                    folder / f"{_check_id(job_id, 'job id')}.lock", os.O_RDWR | os.O_CREAT, 0o644
                )
                handles.append(fd)
                fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            for fd in handles:
                os.close(fd)
            raise StorageError(f"locking jobs in {self.root}: {exc.strerror or exc}") from None
        try:
            yield
        finally:
            for fd in handles:
                os.close(fd)  # closing the last descriptor releases the flock


def _mismatch(path: Path, video: StoredVideo) -> str | None:
    """Why a working copy does not match its record, or ``None`` when it does."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if size != video.size:
        return f"{size} bytes, recorded {video.size}"
    try:
        digest = file_digest(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if digest != video.sha256:
        return f"checksum {digest[:12]}… differs from the recorded {video.sha256[:12]}…"
    return None


class BlobResultStore(ResultStore):
    """A store shared through a blob container, with local working copies.

    Args:
        root: The local folder of working copies (and a local copy of the records).
        blob: The container.
        prefix: Where the store lives in the container.
    """

    def __init__(self, root: Path, blob: BlobStore, prefix: str = BLOB_PREFIX) -> None:
        super().__init__(root)
        self.blob = blob
        self.prefix = prefix

    @property
    def where(self) -> str:
        """Where the records are kept, for messages."""
        return f"blob container {self.blob.container_name}/{self.prefix}"

    def _read_record(self, name: str) -> str | None:
        data = self.blob.read_bytes_if_exists(self.prefix + name)
        return None if data is None else data.decode("utf-8")

    def _write_record(self, name: str, text: str) -> None:
        super()._write_record(name, text)
        self.blob.write_bytes(
            self.prefix + name, text.encode("utf-8"), content_type="application/json"
        )

    def job_ids(self) -> set[str]:
        """Every job id recorded in the container.

        Raises:
            StorageError: The container could not be listed.
        """
        names = self.blob.list_names(self.prefix + "jobs/")
        return {n.split("/")[-2] for n in names if n.endswith("/" + _JOB_FILE)}

    def put(self, job: StoredJob) -> None:
        """Upload the job's verified videos, then its record (and the work's).

        Raises:
            StorageError: An upload failed (the job is then not recorded in the container).
        """
        for video in job.videos:
            self.blob.upload(
                self.video_path(job.job_id, video.name),
                f"{self.prefix}jobs/{job.job_id}/{video.name}",
                metadata={"job_id": job.job_id, "sha256": video.sha256},
            )
        super().put(job)

    def _materialize(self, job: StoredJob, video: StoredVideo, path: Path) -> str | None:
        """Copy a video from the container, checked against the recorded SHA-256."""
        from avatarpipe.batch.fetch import download  # fetch imports media: keep this light

        def check(part: Path) -> None:
            digest = file_digest(part)
            if digest != video.sha256:
                raise DownloadError(
                    f"{self.where}jobs/{job.job_id}/{video.name}: checksum {digest[:12]}… "
                    f"differs from the recorded {video.sha256[:12]}…"
                )

        name = f"{self.prefix}jobs/{job.job_id}/{video.name}"
        try:
            download(self.blob.stream, name, path, expected_size=video.size, check=check)
        except DownloadError as exc:
            return f"the shared copy cannot be used ({exc.message})"
        marker = path.with_name(path.name + ".verified.json")
        _write_atomic(
            marker,
            json.dumps(
                {"size_bytes": video.size, "sha256": video.sha256, "duration_ms": video.duration_ms}
            ),
        )
        log.info("copied %s from %s", path.name, self.where)
        return None


def open_result_store(
    settings: Settings, blob: BlobStore | None = None, *, root: Path | None = None
) -> ResultStore:
    """The run's result store: local, or shared through the blob container when one is given.

    Args:
        settings: The settings (``output_dir`` gives the default local folder).
        blob: The configured container, if any.
        root: The local folder instead of ``<output_dir>/.cache/jobs``.

    Returns:
        The store.
    """
    folder = root if root is not None else Path(settings.output_dir) / ".cache" / "jobs"
    if blob is not None:
        return BlobResultStore(folder, blob)
    return ResultStore(folder)
