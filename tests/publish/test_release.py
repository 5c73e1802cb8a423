"""Releasing a staged run: the manifest accounts for every scene, then the folder is final."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from avatarpipe.batch.run import JobRecord, SynthesisOutcome, VideoRecord
from avatarpipe.publish.folder import RunDirectory
from avatarpipe.publish.manifest import SCHEMA
from avatarpipe.publish.release import release
from avatarpipe.publish.variants import joined_path
from avatarpipe.scripts.jobs import scene_inputs
from avatarpipe.scripts.loader import load_script
from avatarpipe.scripts.ssml import script_hash

EXAMPLES = Path(__file__).resolve().parents[2] / "templates" / "scripts"
RUN_ID = "20261125-181500-abcd"


def test_a_joined_run_is_released_with_a_full_manifest(tmp_path: Path) -> None:
    script = load_script(EXAMPLES / "training-lesson.yaml")
    scenes = scene_inputs(script)
    outcome = SynthesisOutcome(
        videos=[
            VideoRecord(
                key=s.video.key,
                job_id=f"job-{i}",
                path=f"/cache/job-{i}/0001.mp4",
                size_bytes=100 + i,
                sha256="ab" * 32,
                duration_ms=1500,
                downloaded=True,
            )
            for i, s in enumerate(scenes)
        ],
        jobs=[
            JobRecord(
                job_id=f"job-{i}", scene_keys=[s.video.key], status="Succeeded", billing_seconds=2
            )
            for i, s in enumerate(scenes[:-1])  # the last scene's job is not in this outcome
        ],
        service_requests=3,
    )
    run = RunDirectory(tmp_path, script.slug, RUN_ID)
    joined_path(script, run).write_bytes(b"joined")
    item = release(
        script,
        run,
        scenes,
        outcome,
        None,
        store=None,
        flow_run_id=None,
        backend="emulator",
        endpoint="http://127.0.0.1:8765",
        timings={"total": 1.0},
    )
    folder = tmp_path / script.slug / RUN_ID
    assert item.folder == str(folder) and item.manifest == str(folder / "manifest.json")
    assert item.videos == [str(folder / f"{script.slug}.mp4")]
    assert item.blob_names == []
    assert item.duration_s == len(scenes) * 1.5, "no measured output: the scenes' durations"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["schema"] == SCHEMA
    assert (manifest["slug"], manifest["run_id"], manifest["flow_run_id"]) == (
        script.slug,
        RUN_ID,
        None,
    )
    assert manifest["script_sha256"] == script_hash(script)
    assert manifest["outputs"] == [{"path": f"{script.slug}.mp4", "size_bytes": 6}]
    rows = manifest["scenes"]
    assert [r["key"] for r in rows] == [s.video.key for s in scenes]
    assert rows[0]["ssml_sha256"] == hashlib.sha256(scenes[0].video.content.encode()).hexdigest()
    assert rows[0]["job_status"] == "Succeeded" and rows[-1]["job_status"] is None
    assert rows[1]["video"]["size_bytes"] == 101
    assert manifest["billing"]["avatar_seconds"] == 2 * (len(scenes) - 1)
    assert manifest["timings_s"] == {"total": 1.0}
    assert not list((tmp_path / script.slug).glob(".*.partial"))
