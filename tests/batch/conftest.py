"""Shared pieces of the batch tests: planned jobs and a batch client of an emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from avatarpipe.batch.plan import JobOptions, PlannedJob, VideoInput, plan_jobs
from avatarpipe.connect import open_speech
from avatarpipe.settings import Settings
from avatarpipe.speech.batch_avatar import BatchAvatarClient
from avatarpipe.speech.models import BatchAvatarConfig, BatchSynthesisConfig, InputKind
from avatarpipe.speech.ratelimit import UnlimitedBudget


@pytest.fixture
def make_jobs() -> Callable[[int], list[PlannedJob]]:
    """Plans ``n`` one-scene PlainText jobs."""

    def make(n: int) -> list[PlannedJob]:
        options = JobOptions(
            avatar=BatchAvatarConfig(
                talking_avatar_character="lisa", talking_avatar_style="casual-sitting"
            ),
            synthesis=BatchSynthesisConfig(voice="en-US-AvaMultilingualNeural"),
            label="track",
        )
        return plan_jobs(
            [
                VideoInput(key=f"s{i}", content=f"Scene {i}.", input_kind=InputKind.PLAIN_TEXT)
                for i in range(n)
            ],
            options,
        )

    return make


@pytest.fixture
def batch_client() -> Callable[[str], AbstractContextManager[BatchAvatarClient]]:
    """Opens the batch avatar client of an emulator (no rate budget)."""

    @contextmanager
    def open_batch(url: str) -> Iterator[BatchAvatarClient]:
        settings = Settings()
        with open_speech(settings, endpoint=url, backend="emulator", budget=UnlimitedBudget()) as c:
            yield c.batch

    return open_batch
