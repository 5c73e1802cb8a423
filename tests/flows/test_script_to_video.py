"""The main flow: scripts and CSV bulk in, published folders with manifests out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from flow_emu import Emu

from avatarpipe.errors import ConfigError
from avatarpipe.media.ffmpeg import probe
from flows.connections import SpeechTarget
from flows.script_to_video import RunOptions, script_to_video

pytestmark = pytest.mark.usefixtures("prefect_harness")
EXAMPLES = Path(__file__).resolve().parents[2] / "templates" / "scripts"
FAST = {"width": 320, "height": 180, "speed": "ultrafast", "contact_sheet": False}


def _target(emu: Emu) -> SpeechTarget:
    return SpeechTarget(endpoint=emu.url, backend="emulator", requests_per_minute=6000)


def _fast_copy(src: Path, dst_dir: Path, variants: str = '["16:9"]') -> Path:
    """An example script with a small, fast post-processing preset override."""
    data = yaml.safe_load(src.read_text())
    data["post"] = {"preset": "web-1080p", "variants": json.loads(variants), "overrides": FAST}
    dst = dst_dir / src.name
    dst.write_text(yaml.safe_dump(data, sort_keys=False))
    return dst


def test_a_csv_of_three_rows_makes_three_published_videos(emu: Emu, tmp_path: Path) -> None:
    template = _fast_copy(EXAMPLES / "greeting-template.yaml", tmp_path)
    shutil.copy(EXAMPLES / "greetings.csv", tmp_path / "greetings.csv")
    out = tmp_path / "out"
    published = script_to_video(
        str(template),
        _target(emu),
        RunOptions(out_dir=str(out), poll_interval_s=0.2, timeout_s=120),
        str(tmp_path / "greetings.csv"),
    )
    assert sorted(p.slug for p in published) == [
        "greeting-ada",
        "greeting-grace",
        "greeting-katherine",
    ]
    for item in published:
        assert len(item.videos) == 1
        info = probe(item.videos[0])
        assert info.video is not None and (info.video.width, info.video.height) == (320, 180)
        manifest = json.loads(Path(item.manifest).read_text())
        assert manifest["slug"] == item.slug
        assert len(manifest["scenes"]) == 1
    # All rows were polled together: one list call covers every job in flight, and a GET is only
    # used when a single job is left (it costs the same one request).
    routes = emu.stats()["requests_by_route"]
    single_gets = sum(routes.get("GET /avatar/batchsyntheses/{id}", {}).values())
    lists = sum(routes.get("GET /avatar/batchsyntheses", {}).values())
    assert lists >= 1
    assert single_gets <= lists


def test_variants_and_manifest_account_for_every_scene(emu: Emu, tmp_path: Path) -> None:
    script = _fast_copy(EXAMPLES / "training-lesson.yaml", tmp_path, '["16:9", "9:16"]')
    out = tmp_path / "out"
    [item] = script_to_video(
        str(script), _target(emu), RunOptions(out_dir=str(out), poll_interval_s=0.2)
    )
    folder = Path(item.folder)
    assert folder.parent.name == item.slug
    names = sorted(p.name for p in folder.iterdir())
    assert "manifest.json" in names
    sizes = {}
    for video in item.videos:
        info = probe(video)
        assert info.video is not None
        sizes[Path(video).name] = (info.video.width, info.video.height)
    assert sorted(sizes.values()) == [(180, 320), (320, 180)]
    manifest = json.loads((folder / "manifest.json").read_text())
    scene_count = len(manifest["scenes"])
    assert scene_count >= 4
    assert len({s["job_id"] for s in manifest["scenes"]}) == scene_count
    assert all(len(s["ssml_sha256"]) == 64 for s in manifest["scenes"])
    assert {o["path"] for o in manifest["outputs"]} <= set(names)
    assert not list(out.glob("*/.*.partial"))


def test_the_no_post_option_joins_scenes_without_reencoding(emu: Emu, tmp_path: Path) -> None:
    script = _fast_copy(EXAMPLES / "training-lesson.yaml", tmp_path)
    [item] = script_to_video(
        str(script),
        _target(emu),
        RunOptions(out_dir=str(tmp_path / "o"), poll_interval_s=0.2, postprocess=False),
    )
    [video] = item.videos
    manifest = json.loads(Path(item.manifest).read_text())
    total = sum(s["video"]["duration_ms"] for s in manifest["scenes"]) / 1000
    assert abs(probe(video, exact=True).duration_s - total) < 0.2


def test_an_unreachable_blob_container_stops_the_run_before_anything_is_paid(
    emu: Emu, tmp_path: Path, azurite: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong_key = azurite.connection_string.replace(azurite.account_key, "d3Jvbmcta2V5" * 4)
    monkeypatch.setenv("AVATARPIPE_BLOB_CONNECTION_STRING", wrong_key)
    monkeypatch.setenv("AVATARPIPE_BLOB_CONTAINER", "unreachable")
    script = _fast_copy(EXAMPLES / "training-lesson.yaml", tmp_path)
    with pytest.raises(ConfigError) as info:
        script_to_video(str(script), _target(emu), RunOptions(out_dir=str(tmp_path / "out")))
    line = info.value.message
    assert line.startswith("AVATARPIPE_BLOB_CONTAINER unreachable: ") and "\n" not in line
    assert "d3Jvbmcta2V5" not in line
    assert emu.stats()["jobs_created"] == 0
