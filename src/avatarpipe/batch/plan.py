"""Planning batch jobs: which inputs go in which job, and the job's deterministic id.

The job id is the continuation token of the whole pipeline. It is derived from a hash of
everything that shapes the result (the inputs, the avatar, the voice, the video settings), so the
same work always gets the same id: a rerun after a crash finds the job it already paid for and
re-attaches instead of submitting it again. A resubmission after a transient failure gets a new id
derived from the same hash plus the attempt number (``-r1``, ``-r2``...).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from avatarpipe.errors import RequestValidationError
from avatarpipe.speech.models import (
    MAX_INPUTS,
    MAX_PAYLOAD_BYTES,
    BatchAvatarConfig,
    BatchSynthesis,
    BatchSynthesisConfig,
    BatchSynthesisInput,
    BatchSynthesisProperties,
    InputKind,
    check_resource_id,
)

__all__ = ["JobOptions", "PlannedJob", "VideoInput", "job_id_for", "plan_jobs"]

_ID_PREFIX = "ap"
_HASH_CHARS = 20


class VideoInput(BaseModel):
    """One video to make: one input of a batch job (plain data, so it can be a flow parameter).

    Attributes:
        key: A stable name for the video within its run (``scene-001``), used in file names.
        content: Plain text or a whole SSML document.
        input_kind: What ``content`` is.
    """

    model_config = ConfigDict(frozen=True)

    key: str
    content: str
    input_kind: InputKind = InputKind.SSML


@dataclass(frozen=True)
class JobOptions:
    """Everything besides the inputs that shapes a job's result (and so its id).

    Attributes:
        avatar: The ``avatarConfig`` sent with every job.
        synthesis: ``synthesisConfig`` (needed for PlainText inputs).
        custom_voices: Voice name -> CNV deployment id.
        ttl_hours: ``timeToLiveInHours``: how long the service keeps the job and its results.
        label: A short, human-readable part for the job id (e.g. the script's slug).
    """

    avatar: BatchAvatarConfig
    synthesis: BatchSynthesisConfig | None = None
    custom_voices: tuple[tuple[str, str], ...] = ()
    ttl_hours: int = 168
    label: str = ""

    def fingerprint(self) -> dict[str, Any]:
        """The canonical, JSON-ready form hashed into job ids (secrets never appear here)."""
        return {
            "avatar": self.avatar.wire(),
            "synthesis": self.synthesis.wire() if self.synthesis else None,
            "customVoices": dict(sorted(self.custom_voices)),
            "ttl": self.ttl_hours,
        }


@dataclass(frozen=True)
class PlannedJob:
    """A job to submit (or to re-attach to).

    Attributes:
        job_id: The deterministic id.
        inputs: The videos in this job, in input order (``0001`` is ``inputs[0]``).
        options: The shared options.
        work_hash: The hash the id is derived from (without the attempt suffix).
        attempt: 0 for the first submission, n for the n-th resubmission.
    """

    job_id: str
    inputs: tuple[VideoInput, ...]
    options: JobOptions
    work_hash: str
    attempt: int = 0

    def request(self, destination_container_url: str | None = None) -> BatchSynthesis:
        """Build the job's create request.

        Args:
            destination_container_url: A writable container SAS URL; required for several inputs.

        Returns:
            The request model (validate and serialise it with ``to_request()``).
        """
        kinds = {i.input_kind for i in self.inputs}
        if len(kinds) != 1:
            raise RequestValidationError(f"job {self.job_id}: inputs mix PlainText and SSML")
        props = BatchSynthesisProperties(
            time_to_live_in_hours=self.options.ttl_hours,
            destination_container_url=destination_container_url,
        )
        return BatchSynthesis(
            description=f"avatarpipe {self.options.label} ({len(self.inputs)} inputs)".strip(),
            input_kind=kinds.pop(),
            inputs=[BatchSynthesisInput(content=i.content) for i in self.inputs],
            synthesis_config=self.options.synthesis,
            custom_voices=dict(self.options.custom_voices),
            properties=props,
            avatar_config=self.options.avatar,
        )

    def retry(self) -> PlannedJob:
        """The same work under the next attempt's id (after a transient job failure)."""
        return self.at_attempt(self.attempt + 1)

    def at_attempt(self, attempt: int) -> PlannedJob:
        """The same work under the id of attempt ``attempt`` (0: the first submission)."""
        return PlannedJob(
            job_id=job_id_for(self.work_hash, self.options.label, attempt),
            inputs=self.inputs,
            options=self.options,
            work_hash=self.work_hash,
            attempt=attempt,
        )


def _slug(label: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    return slug[:24].strip("-")


def job_id_for(work_hash: str, label: str = "", attempt: int = 0) -> str:
    """Derive a job id from a work hash.

    Args:
        work_hash: Hex digest of the work.
        label: A readable part (slugified, at most 24 characters).
        attempt: The resubmission number (0 = first).

    Returns:
        An id such as ``ap-quarterly-update-3f2a...`` that matches the service's id pattern.
    """
    parts = [_ID_PREFIX]
    slug = _slug(label)
    if slug:
        parts.append(slug)
    parts.append(work_hash[:_HASH_CHARS])
    if attempt:
        parts.append(f"r{attempt}")
    return check_resource_id("-".join(parts), "job id")


def _work_hash(inputs: Sequence[VideoInput], options: JobOptions) -> str:
    canonical = json.dumps(
        {
            "inputs": [[i.input_kind.value, i.content] for i in inputs],
            "options": options.fingerprint(),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def plan_jobs(
    inputs: Sequence[VideoInput],
    options: JobOptions,
    *,
    pack: bool = False,
    max_inputs_per_job: int = 100,
) -> list[PlannedJob]:
    """Group videos into jobs with deterministic ids.

    Without packing every video is its own job (the service returns one signed result URL per
    job). With packing (a destination container is configured), videos are grouped into
    multi-input jobs of at most ``max_inputs_per_job`` inputs and under the 500 KB payload limit.

    Args:
        inputs: The videos, in order. Keys must be unique.
        options: Avatar, voice and video settings shared by all jobs.
        pack: Pack several videos per job.
        max_inputs_per_job: Upper bound on inputs per packed job (<= 1000).

    Returns:
        The jobs, in input order.

    Raises:
        RequestValidationError: No inputs, duplicate keys, or one input alone over the limits.
    """
    if not inputs:
        raise RequestValidationError("nothing to synthesize: no inputs")
    keys = [i.key for i in inputs]
    if len(set(keys)) != len(keys):
        raise RequestValidationError("input keys must be unique")
    limit = max(1, min(max_inputs_per_job, MAX_INPUTS)) if pack else 1
    budget = MAX_PAYLOAD_BYTES - 16 * 1024  # room for the rest of the body
    groups: list[list[VideoInput]] = []
    current: list[VideoInput] = []
    size = 0
    for item in inputs:
        item_size = len(json.dumps(item.content).encode()) + 16
        if item_size > budget:
            raise RequestValidationError(
                f"input {item.key!r} is {item_size // 1024} KB: over the 500 KB request limit"
            )
        if current and (
            len(current) >= limit
            or size + item_size > budget
            or current[0].input_kind != item.input_kind
        ):
            groups.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        groups.append(current)
    jobs = []
    for group in groups:
        work_hash = _work_hash(group, options)
        jobs.append(
            PlannedJob(
                job_id=job_id_for(work_hash, options.label),
                inputs=tuple(group),
                options=options,
                work_hash=work_hash,
            )
        )
    return jobs
