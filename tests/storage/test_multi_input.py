"""The multi-input path end to end: emulator + Azurite + a real Prefect API.

With a blob connection configured, the synthesize flow packs every scene into one job, hands
the service a write SAS as ``destinationContainerUrl`` (the emulator uploads through the Blob
API), and downloads the videos back from the container.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from azurite_fixture import Azurite
from flow_emu import Emu

from avatarpipe.batch.run import SynthesisRequest, VideoInput
from avatarpipe.media.ffmpeg import probe
from avatarpipe.speech.models import BatchAvatarConfig, BatchSynthesisConfig, VideoCodec
from avatarpipe.storage.blob import BlobStore
from flows.connections import SpeechTarget
from flows.synthesize import synthesize

pytestmark = [pytest.mark.azurite, pytest.mark.usefixtures("prefect_harness")]


def test_scenes_are_packed_into_one_job_written_to_the_container_and_downloaded(
    emu: Emu, azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = f"packed-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("AVATARPIPE_BLOB_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("AVATARPIPE_BLOB_CONTAINER", container)
    n = 4
    request = SynthesisRequest(
        label="packed",
        inputs=[
            VideoInput(key=f"scene-{i}", content=f"Scene {i} is short.", input_kind="PlainText")
            for i in range(1, n + 1)
        ],
        avatar=BatchAvatarConfig(
            talking_avatar_character="lisa",
            talking_avatar_style="casual-sitting",
            video_codec=VideoCodec.H264,
        ),
        synthesis=BatchSynthesisConfig(voice="en-US-AvaMultilingualNeural"),
        pack=True,
        cache_dir=str(tmp_path / "cache"),
        poll_interval_s=0.2,
        timeout_s=120,
    )
    target = SpeechTarget(
        endpoint=emu.url,
        backend="emulator",
        requests_per_minute=6000,
        rate_limit_name=f"rl-packed-{uuid.uuid4().hex[:6]}",
    )
    outcome = synthesize(request, target)

    stats = emu.stats()
    assert stats["jobs_created"] == 1, f"{n} scenes must go into ONE multi-input job"
    assert len(outcome.jobs) == 1 and outcome.jobs[0].scene_keys == [
        f"scene-{i}" for i in range(1, n + 1)
    ]
    # Nothing came from the service's own result URLs: everything was read from the container.
    assert stats["downloads_by_kind"].get("video", 0) == 0

    store = BlobStore.from_connection_string(azurite.connection_string, container)
    job_id = outcome.jobs[0].job_id
    names = store.list_names(f"{job_id}/")
    assert names == [f"{job_id}/{i:04d}.mp4" for i in range(1, n + 1)] + [f"{job_id}/summary.json"]
    assert [v.key for v in outcome.videos] == [f"scene-{i}" for i in range(1, n + 1)]
    for index, video in enumerate(outcome.videos, start=1):
        local = Path(video.path).read_bytes()
        assert local == store.read_bytes(f"{job_id}/{index:04d}.mp4"), (
            "downloaded bytes = container bytes"
        )
        assert hashlib.sha256(local).hexdigest() == video.sha256
        info = probe(Path(video.path))
        assert info.video is not None and info.video.codec == "h264"
    # The SAS never reaches what the run returns (it becomes flow state in the Prefect DB).
    assert "sig=" not in outcome.model_dump_json()
