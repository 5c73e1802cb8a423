"""The nightly sweep really retries a failed script the next night (issue 14).

Night one: every job fails (fault knob), so the script fails after its resubmissions. Night two,
faults off: the same script is rendered, with one new job under the next attempt id, whatever
the failed jobs still on the service say.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from flow_emu import Emu

from avatarpipe.errors import OutcomeError
from flows.connections import SpeechTarget
from flows.nightly import nightly
from flows.script_to_video import RunOptions

pytestmark = pytest.mark.usefixtures("prefect_harness")

SCRIPT = """title: Nightly retry
avatar: {character: lisa, style: casual-sitting}
voice: {name: en-US-AvaMultilingualNeural}
video: {format: mp4, codec: h264}
scenes:
  - text: Tonight this fails, tomorrow it works.
"""


def test_a_script_that_failed_is_rendered_the_next_night(emu: Emu, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "retry.yaml").write_text(SCRIPT, encoding="utf-8")
    target = SpeechTarget(
        endpoint=emu.url,
        backend="emulator",
        requests_per_minute=6000,
        rate_limit_name=f"rl-retry-{uuid.uuid4().hex[:6]}",
    )
    options = RunOptions(
        out_dir=str(tmp_path / "out"), poll_interval_s=0.2, timeout_s=120, postprocess=False
    )
    emu.configure(faults={"p_job_fail": 1.0})
    with pytest.raises(OutcomeError, match="retry.yaml"):
        nightly(str(inbox), target, options)
    failed = set(emu.stats()["puts_by_job_id"])
    assert len(failed) == 3, "the first job and its two resubmissions"

    emu.configure(faults={"p_job_fail": 0.0})
    night_two = nightly(str(inbox), target, options)

    assert night_two.rendered == ["retry.yaml"]
    stats = emu.stats()
    [new] = set(stats["puts_by_job_id"]) - failed
    assert new.endswith("-r3") and stats["jobs_created"] == 4
