"""``avatarpipe run`` progress: the same stages and counts, in the right units, on a first run and
on reruns (clips reused from the result store, jobs re-attached on the service), as plain lines
without a terminal and as bars on one.

The runs are real CLI processes (no terminal: stdin, stdout and stderr are files) against an
emulator on a free port and the session's Prefect API; what each run paid for is checked with
the emulator's counters.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flow_emu import LOCAL_KEY, Emu

from avatarpipe import progress
from avatarpipe.cli.display import Display

AVATARPIPE = str(Path(sys.executable).with_name("avatarpipe"))
SCRIPT = """\
title: Progress check
avatar: {character: lisa, style: casual-sitting}
voice: {name: en-US-AvaNeural}
scenes:
  - text: Hello one.
  - text: Hello two.
  - text: Hello three.
post:
  preset: web-1080p
  overrides: {width: 320, height: 180, speed: ultrafast, contact_sheet: false}
"""
STAGE_RE = re.compile(
    r"^(submitted|rendering|downloaded|post-processed|published): (\d+)/(\d+) ([a-z ]+?)s?"
    r"(?: done)?(?:, (.*?))?, \d+[smh].* elapsed$"
)


def _run(emu: Emu, tmp_path: Path, out: Path) -> str:
    from prefect.settings import PREFECT_API_URL

    script = tmp_path / "progress-check.yaml"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "AVATARPIPE_SPEECH_ENDPOINT": emu.url,
        "AVATARPIPE_BACKEND": "emulator",
        "AVATARPIPE_SPEECH_KEY": LOCAL_KEY,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "COLUMNS": "200",
    }
    done = subprocess.run(  # noqa: S603 - fixed argv
        [AVATARPIPE, "run", str(script), "--out", str(out), "--poll", "0.2"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\x1b[" not in done.stderr and "\r" not in done.stderr, "plain lines, no bars"
    return done.stderr


def _stages(stderr: str) -> dict[str, tuple[int, int, str, str]]:
    """Each stage's last line: done, total, unit, note (in the order the stages were shown)."""
    found: dict[str, tuple[int, int, str, str]] = {}
    for line in stderr.splitlines():
        match = STAGE_RE.match(line)
        if match:
            stage, done, total, unit, note = match.groups()
            found.pop(stage, None)
            found[stage] = (int(done), int(total), unit, note or "")
    return found


def _planned(stderr: str) -> str:
    return [line for line in stderr.splitlines() if line.startswith("planned:")][-1]


def test_first_run_and_reruns_show_the_same_stages_and_counts(
    emu: Emu, tmp_path: Path, prefect_harness: None
) -> None:
    out = tmp_path / "out"
    first = _run(emu, tmp_path, out)
    created = emu.stats()["jobs_created"]
    assert created == 3, "one job per clip"
    reused = _run(emu, tmp_path, out)
    shutil.rmtree(out / ".cache" / "jobs")  # the store forgot them; the service still has them
    reattached = _run(emu, tmp_path, out)
    assert emu.stats()["jobs_created"] == created, "the reruns paid for no job"

    runs = {"first": first, "reused": reused, "re-attached": reattached}
    expected = {
        "submitted": (3, 3, "job"),
        "rendering": (3, 3, "job"),
        "downloaded": (3, 3, "clip"),
        "post-processed": (1, 1, "video"),
        "published": (1, 1, "run folder"),
    }
    for name, stderr in runs.items():
        assert _planned(stderr) == "planned: 1 video from 1 script; 3 clips in 3 jobs", stderr
        stages = _stages(stderr)
        assert list(stages) == list(expected), f"{name}:\n{stderr}"
        assert {k: v[:3] for k, v in stages.items()} == expected, f"{name}:\n{stderr}"
    assert _stages(first)["submitted"][3] == "3 new"
    assert _stages(reused)["submitted"][3] == "3 reused from the result store"
    assert _stages(reattached)["submitted"][3] == "3 re-attached"
    print("\n" + first)


def _events(display: Display) -> None:
    """A run half-way: 3 clips in 2 jobs; one job done and downloaded, one still queued."""
    display(progress.ProgressEvent("videos", total=2, data={"scripts": 1}))
    display(progress.ProgressEvent("planned", "x", total=3, data={"jobs": 2}))
    for clip, job in (("c1", "j1"), ("c2", "j1"), ("c3", "j2")):
        display(progress.ProgressEvent("submitted", clip, job, job=job, data={"created": 1}))
    for clip in ("c1", "c2"):
        display(progress.ProgressEvent("rendering", clip, "j1", job="j1"))
        display(progress.ProgressEvent("rendered", clip, "j1", job="j1"))
        display(progress.ProgressEvent("downloaded", clip, job="j1"))


def test_the_plain_display_repeats_the_current_stage_while_waiting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    display = Display(live=False, heartbeat_s=60)
    with display.running():
        _events(display)
        capsys.readouterr()
        display.heartbeat()  # nothing new was said a moment ago: quiet
        assert capsys.readouterr().err == ""
        display.last_line -= 61  # a minute without a line
        display.heartbeat()
    line = capsys.readouterr().err.strip()
    assert re.fullmatch(r"rendering: 1/2 jobs done, 1 queued, \d+s elapsed", line), line
    assert display.interrupted().startswith("interrupted: 1 job still rendering on the service")


def test_the_bars_count_the_same_units_as_the_lines() -> None:
    display = Display(live=True)
    with display.running():
        _events(display)
        bars = {
            t.description: (t.completed, t.total, t.fields["unit"]) for t in display._progress.tasks
        }
    assert bars == {
        "submitted": (2, 2, "jobs"),
        "rendering": (1, 2, "jobs"),
        "downloaded": (2, 3, "clips"),
        "post-processed": (0, 2, "videos"),
        "published": (0, 1, "run folder"),
    }
