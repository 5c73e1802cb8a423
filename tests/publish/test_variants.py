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
