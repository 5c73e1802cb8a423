"""The outputs a script asks for: one job per variant, named by slug and aspect ratio."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from avatarpipe.errors import PresetError
from avatarpipe.publish.folder import RunDirectory
from avatarpipe.publish.variants import joined_path, output_jobs, preset_for, variant_suffix
from avatarpipe.scripts.loader import load_script
from avatarpipe.scripts.model import Script

EXAMPLES = Path(__file__).resolve().parents[2] / "templates" / "scripts"


def _script(tmp_path: Path, post: dict[str, object]) -> Script:
    data = yaml.safe_load((EXAMPLES / "training-lesson.yaml").read_text())
    data["post"] = post
    path = tmp_path / "lesson.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_script(path)


def test_variant_suffixes() -> None:
    assert variant_suffix("16:9") == ""
    assert variant_suffix("9:16") == "-9x16"
    assert variant_suffix("1:1") == "-1x1"


def test_one_job_per_variant_in_the_run_folder(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        {
            "preset": "web-1080p",
            "variants": ["16:9", "9:16"],
            "overrides": {"width": 320, "height": 180},
        },
    )
    scenes = []
    for i in range(2):
        scene = tmp_path / f"scene-{i}.mp4"
        scene.write_bytes(b"")
        scene.with_suffix(".vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nHello\n")
        scenes.append(scene)
    run = RunDirectory(tmp_path / "out", script.slug, "20261125-181500-abcd")
    jobs = output_jobs(script, scenes, run)
    assert [j.out_path.name for j in jobs] == [f"{script.slug}.mp4", f"{script.slug}-9x16.mp4"]
    assert all(j.out_path.parent == run.staging.resolve() for j in jobs)
    assert [(j.preset.width, j.preset.height) for j in jobs] == [(320, 180), (180, 320)]
    assert all(j.scenes == scenes for j in jobs)
    assert all(j.cache_dir == tmp_path / "out" / ".cache" / "conformed" for j in jobs)
    assert jobs[0].scene_cues is not None and [len(c) for c in jobs[0].scene_cues] == [1, 1]
    assert joined_path(script, run) == run.staging.resolve() / f"{script.slug}.mp4"


def test_an_unknown_variant_names_itself(tmp_path: Path) -> None:
    script = _script(tmp_path, {"preset": "web-1080p"})
    with pytest.raises(PresetError, match="4:3"):
        preset_for(script, "4:3")


def _video_script(tmp_path: Path, video: dict[str, object], post: dict[str, object]) -> Script:
    data = yaml.safe_load((EXAMPLES / "training-lesson.yaml").read_text())
    data["video"] = video
    data["post"] = post
    path = tmp_path / "lesson.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_script(path)


def test_the_scripts_codec_and_bitrate_carry_through_when_the_preset_allows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = {"format": "mp4", "codec": "hevc", "bitrate_kbps": 3000}
    script = _video_script(tmp_path, video, {"preset": "web-1080p", "variants": ["16:9", "9:16"]})
    run = RunDirectory(tmp_path / "out", script.slug, "20261125-181500-abcd")
    with caplog.at_level("WARNING"):
        jobs = output_jobs(script, [], run)
    assert [(j.preset.video_codec, j.preset.video_bitrate_kbps) for j in jobs] == [
        ("hevc", 3000),
        ("hevc", 3000),
    ]
    assert not caplog.records and all(not j.warnings for j in jobs)
    # post.overrides win over video:
    script = _video_script(
        tmp_path, video, {"preset": "web-1080p", "overrides": {"video_bitrate_kbps": 4000}}
    )
    assert preset_for(script, "16:9").video_bitrate_kbps == 4000


def test_what_the_preset_cannot_honour_is_one_warning_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # archive-master encodes at constant quality: the bitrate cannot carry (the codec can)
    video = {"format": "mp4", "codec": "hevc", "bitrate_kbps": 3000}
    script = _video_script(tmp_path, video, {"preset": "archive-master"})
    run = RunDirectory(tmp_path / "out", script.slug, "20261125-181500-abcd")
    with caplog.at_level("WARNING"):
        [job] = output_jobs(script, [], run)
    assert job.preset.video_codec == "hevc" and job.preset.crf == 14
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "bitrate_kbps 3000 is not used" in lines[0]
    assert list(job.warnings) == lines
    # av1 goes in no preset container: named, re-encoded to the preset's codec
    caplog.clear()
    script = _video_script(tmp_path, {"format": "mp4", "codec": "av1"}, {"preset": "web-1080p"})
    with caplog.at_level("WARNING"):
        [job] = output_jobs(script, [], run)
    assert job.preset.video_codec == "h264"
    [line] = [r.getMessage() for r in caplog.records]
    assert "video.codec av1 is re-encoded to h264" in line


def test_no_post_keeps_the_services_container_and_variants_get_the_background(
    tmp_path: Path,
) -> None:
    video = {"format": "webm", "codec": "vp9", "background": "transparent"}
    script = _video_script(tmp_path, video, {"preset": "web-transparent"})
    run = RunDirectory(tmp_path / "out", script.slug, "20261125-181500-abcd")
    assert joined_path(script, run).name == f"{script.slug}.webm"
    scene = tmp_path / "0001.webm"
    scene.write_bytes(b"")
    scene.with_suffix(".vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nHello\n")
    [job] = output_jobs(script, [scene], run)
    assert job.background == "#00000000"
    assert list(job.caption_files) == [scene.with_suffix(".vtt")]
    assert job.out_path.suffix == ".webm"
