"""The synthesize flow against the real emulator over HTTP, under a real Prefect API."""

from __future__ import annotations

from pathlib import Path

import pytest
from flow_emu import Emu

from avatarpipe.batch.run import SynthesisRequest, VideoInput
from avatarpipe.errors import SynthesisFailedError
from avatarpipe.media.ffmpeg import probe
from avatarpipe.speech.models import BatchAvatarConfig, BatchSynthesisConfig, VideoCodec
from flows.connections import SpeechTarget
from flows.synthesize import synthesize

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _request(
    tmp_path: Path, n: int, *, label: str = "ten-scenes", text: str = "Scene {i} says hello."
) -> SynthesisRequest:
    return SynthesisRequest(
        label=label,
        inputs=[
            VideoInput(key=f"scene-{i:03d}", content=text.format(i=i), input_kind="PlainText")
            for i in range(1, n + 1)
        ],
        avatar=BatchAvatarConfig(
            talking_avatar_character="lisa",
            talking_avatar_style="casual-sitting",
            video_codec=VideoCodec.H264,
        ),
        synthesis=BatchSynthesisConfig(voice="en-US-AvaMultilingualNeural"),
        cache_dir=str(tmp_path / "cache"),
        poll_interval_s=0.2,
        timeout_s=120,
    )


def _target(emu: Emu) -> SpeechTarget:
    return SpeechTarget(
        endpoint=emu.url,
        backend="emulator",
        requests_per_minute=6000,
        rate_limit_name=f"rl-{Path(emu.url).name.replace(':', '-')}",
    )


def test_ten_scenes_make_ten_verified_videos_and_a_rerun_creates_no_job(
    emu: Emu, tmp_path: Path
) -> None:
    request = _request(tmp_path, 10)
    first = synthesize(request, _target(emu))
    assert [v.key for v in first.videos] == [f"scene-{i:03d}" for i in range(1, 11)]
    for video in first.videos:
        path = Path(video.path)
        assert path.stat().st_size == video.size_bytes
        info = probe(path)
        assert info.video is not None and info.video.codec == "h264"
        assert info.audio is not None
        assert video.downloaded
    stats = emu.stats()
    assert stats["jobs_created"] == 10
    assert all(count == 1 for count in stats["puts_by_job_id"].values())

    second = synthesize(request, _target(emu))
    after = emu.stats()
    assert after["jobs_created"] == 10, "a rerun of the same work must not create jobs"
    assert after["puts_by_job_id"] == stats["puts_by_job_id"]
    assert [v.sha256 for v in second.videos] == [v.sha256 for v in first.videos]
    assert not any(v.downloaded for v in second.videos), "verified downloads are not fetched again"
    assert after["downloads_by_kind"]["video"] == stats["downloads_by_kind"]["video"]
    # One list call answers for many jobs: far fewer requests than one GET per job per poll.
    assert second.service_requests <= 3


def test_injected_http_faults_still_end_with_every_video(make_emu: object, tmp_path: Path) -> None:
    emu = make_emu()  # type: ignore[operator]
    emu.configure(faults={"seed": 7, "p_429": 0.15, "p_500": 0.1, "p_503": 0.1, "p_reset": 0.05})
    result = synthesize(_request(tmp_path, 6, label="faults"), _target(emu))
    assert len(result.videos) == 6
    stats = emu.stats()
    assert sum(stats["faults_injected"].values()) > 0, stats["faults_injected"]
    assert stats["jobs_created"] == 6
    assert all(count == 1 for count in stats["puts_by_job_id"].values())


def test_failed_jobs_are_resubmitted_under_derived_ids(make_emu: object, tmp_path: Path) -> None:
    emu = make_emu()  # type: ignore[operator]
    emu.configure(faults={"seed": 3, "fail_next_jobs": 3})
    result = synthesize(_request(tmp_path, 6, label="job-fail"), _target(emu))
    assert len(result.videos) == 6
    retried = [j for j in result.jobs if j.attempt > 0]
    assert retried, "the first three jobs to start fail"
    for job in retried:
        assert job.job_id.endswith(f"-r{job.attempt}")
    assert emu.stats()["faults_injected"].get("job_fail", 0) == 3
    assert len({j.job_id for j in retried}) == 3


def test_expired_result_urls_are_refreshed(make_emu: object, tmp_path: Path) -> None:
    emu = make_emu()  # type: ignore[operator]
    emu.configure(faults={"seed": 1, "p_expired_url": 0.5})
    result = synthesize(_request(tmp_path, 4, label="expired"), _target(emu))
    assert len(result.videos) == 4
    assert emu.stats()["faults_injected"].get("expired_url", 0) > 0


def test_a_permanent_failure_fails_the_run_after_keeping_the_good_videos(
    emu: Emu, tmp_path: Path
) -> None:
    request = _request(tmp_path, 3, label="bad-input")
    bad = request.model_copy(
        update={
            "inputs": [
                *request.inputs,
                VideoInput(key="broken", content="<speak>not closed", input_kind="SSML"),
            ]
        }
    )
    with pytest.raises(SynthesisFailedError) as info:
        synthesize(bad, _target(emu))
    assert "broken" in info.value.message
    kept = list((tmp_path / "cache").glob("*/0001.mp4"))
    assert len(kept) == 3
