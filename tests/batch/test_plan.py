from __future__ import annotations

import pytest

from avatarpipe.batch.plan import JobOptions, VideoInput, job_id_for, plan_jobs
from avatarpipe.errors import RequestValidationError
from avatarpipe.speech.models import (
    RESOURCE_ID_PATTERN,
    BatchAvatarConfig,
    BatchSynthesisConfig,
    InputKind,
    VideoCodec,
)


def _options(**kw: object) -> JobOptions:
    base: dict[str, object] = {
        "avatar": BatchAvatarConfig(
            talking_avatar_character="lisa", talking_avatar_style="casual-sitting"
        ),
        "synthesis": BatchSynthesisConfig(voice="en-US-AvaMultilingualNeural"),
        "label": "Quarterly Update!",
    }
    base.update(kw)
    return JobOptions(**base)  # type: ignore[arg-type]


def _inputs(n: int, kind: InputKind = InputKind.PLAIN_TEXT) -> list[VideoInput]:
    return [
        VideoInput(key=f"scene-{i:03d}", content=f"Scene number {i}.", input_kind=kind)
        for i in range(1, n + 1)
    ]


def test_same_work_gets_the_same_ids_and_ids_match_the_service_pattern() -> None:
    import re

    first = plan_jobs(_inputs(5), _options())
    second = plan_jobs(_inputs(5), _options())
    assert [j.job_id for j in first] == [j.job_id for j in second]
    assert len({j.job_id for j in first}) == 5
    for job in first:
        assert re.match(RESOURCE_ID_PATTERN, job.job_id)
        assert job.job_id.startswith("ap-quarterly-update-")


@pytest.mark.parametrize(
    "change",
    [
        {
            "avatar": BatchAvatarConfig(
                talking_avatar_character="lisa", talking_avatar_style="graceful-sitting"
            )
        },
        {"avatar": BatchAvatarConfig(talking_avatar_character="lisa", video_codec=VideoCodec.H264)},
        {"synthesis": BatchSynthesisConfig(voice="en-US-JennyNeural")},
        {"custom_voices": (("ContosoNeural", "9f50c644-2121-40e9-9ea7-544e48bfe3cb"),)},
        {"ttl_hours": 24},
    ],
)
def test_any_setting_that_shapes_the_result_changes_the_id(change: dict[str, object]) -> None:
    base = plan_jobs(_inputs(1), _options())[0].job_id
    assert plan_jobs(_inputs(1), _options(**change))[0].job_id != base


def test_text_change_changes_only_that_scene() -> None:
    a = plan_jobs(_inputs(3), _options())
    changed = _inputs(3)
    changed[1] = VideoInput(
        key="scene-002", content="Different words.", input_kind=InputKind.PLAIN_TEXT
    )
    b = plan_jobs(changed, _options())
    assert [x.job_id == y.job_id for x, y in zip(a, b, strict=True)] == [True, False, True]


def test_packing_groups_inputs_and_respects_the_per_job_bound() -> None:
    jobs = plan_jobs(_inputs(250), _options(), pack=True, max_inputs_per_job=100)
    assert [len(j.inputs) for j in jobs] == [100, 100, 50]
    assert [i.key for j in jobs for i in j.inputs] == [f"scene-{i:03d}" for i in range(1, 251)]


def test_packing_splits_under_the_payload_limit() -> None:
    big = [
        VideoInput(key=f"s{i}", content="x" * 100_000, input_kind=InputKind.PLAIN_TEXT)
        for i in range(8)
    ]
    jobs = plan_jobs(big, _options(), pack=True)
    assert len(jobs) > 1
    for job in jobs:
        request = job.request("https://acct.blob.core.windows.net/c?sv=1&sig=abc")
        body = request.to_request()  # would raise over 500 KB
        assert len(body["inputs"]) == len(job.inputs)


def test_a_single_input_over_the_limit_is_refused() -> None:
    with pytest.raises(RequestValidationError, match="500 KB"):
        plan_jobs(
            [VideoInput(key="huge", content="x" * 600_000, input_kind=InputKind.PLAIN_TEXT)],
            _options(),
        )


def test_duplicate_keys_and_empty_plans_are_refused() -> None:
    with pytest.raises(RequestValidationError, match="unique"):
        plan_jobs([VideoInput(key="a", content="x"), VideoInput(key="a", content="y")], _options())
    with pytest.raises(RequestValidationError, match="no inputs"):
        plan_jobs([], _options())


def test_retry_ids_are_derived_and_distinct() -> None:
    job = plan_jobs(_inputs(1), _options())[0]
    again = job.retry()
    assert again.job_id == job.job_id + "-r1"
    assert again.retry().job_id == job.job_id + "-r2"
    assert again.work_hash == job.work_hash
    assert job_id_for(job.work_hash, "Quarterly Update!", 1) == again.job_id


def test_request_carries_inputs_options_and_ttl() -> None:
    job = plan_jobs(
        _inputs(1),
        _options(custom_voices=(("ContosoNeural", "9f50c644-2121-40e9-9ea7-544e48bfe3cb"),)),
    )[0]
    body = job.request().to_request()
    assert body["inputs"] == [{"content": "Scene number 1."}]
    assert body["customVoices"] == {"ContosoNeural": "9f50c644-2121-40e9-9ea7-544e48bfe3cb"}
    assert body["properties"]["timeToLiveInHours"] == 168
    assert body["avatarConfig"]["talkingAvatarCharacter"] == "lisa"
