"""The run folder: staged under a hidden name, renamed into place only when complete."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from avatarpipe.errors import ConfigError, StorageError
from avatarpipe.publish.folder import RunDirectory, check_room, new_run_id, write_json_atomic

RUN_ID = "20261125-181500-1a2b3c4d"


def test_run_ids_sort_by_time_and_keep_a_safe_suffix() -> None:
    when = datetime(2026, 11, 25, 18, 15, tzinfo=UTC)
    assert new_run_id("1A2B-3C4D-ffff", now=when) == RUN_ID
    assert new_run_id("!!!", now=when) == "20261125-181500-run"
    assert re.fullmatch(r"\d{8}-\d{6}-[a-z0-9]+", new_run_id("local"))


def test_a_folder_is_staged_then_committed_with_its_manifest(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path, "demo", RUN_ID)
    assert (run.slug, run.run_id) == ("demo", RUN_ID)
    run.path("demo.mp4").write_bytes(b"video")
    assert not (tmp_path / "demo" / RUN_ID).exists(), "nothing carries the final name yet"
    final = run.commit({"schema": "x", "secret": "AccountKey=abc123;"})
    assert final == tmp_path / "demo" / RUN_ID
    assert sorted(p.name for p in final.iterdir()) == ["demo.mp4", "manifest.json"]
    assert not list((tmp_path / "demo").glob(".*.partial"))
    assert "abc123" not in (final / "manifest.json").read_text(), "the manifest is redacted"


def _crashed_run(root: Path, run_id: str) -> None:
    """A run in another process that staged a file and died without cleaning up (``kill -9``)."""
    code = (
        "import os, sys; from pathlib import Path; from avatarpipe.publish.folder import "
        "RunDirectory; r = RunDirectory(Path(sys.argv[1]), 'demo', sys.argv[2]); "
        "r.path('half.mp4').write_bytes(b'half'); os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", code, str(root), run_id], check=False)  # noqa: S603


def test_runs_never_overwrite_each_other_and_stale_staging_is_removed(tmp_path: Path) -> None:
    RunDirectory(tmp_path, "demo", RUN_ID).commit({})
    with pytest.raises(StorageError, match="already exists"):
        RunDirectory(tmp_path, "demo", RUN_ID)
    _crashed_run(tmp_path, "20261125-181501-crashed")
    assert (tmp_path / "demo" / ".20261125-181501-crashed.partial" / "half.mp4").is_file()
    RunDirectory(tmp_path, "demo", "20261125-181502-next")
    assert [p.name for p in (tmp_path / "demo").glob(".*.partial")] == [
        ".20261125-181502-next.partial"
    ]


def test_a_live_runs_staging_folder_is_never_removed(tmp_path: Path) -> None:
    # Two runs of one script (or two titles with the same slug) at once.
    first = RunDirectory(tmp_path, "demo", "20261125-181501-first")
    first.path("a.mp4").write_bytes(b"a")
    second = RunDirectory(tmp_path, "demo", "20261125-181502-second")
    assert first.path("a.mp4").read_bytes() == b"a", "the other run's file is still there"
    assert sorted(p.name for p in first.commit({}).iterdir()) == ["a.mp4", "manifest.json"]
    assert sorted(p.name for p in second.commit({}).iterdir()) == ["manifest.json"]


def test_the_output_root_must_have_room_for_the_run(tmp_path: Path) -> None:
    check_room(tmp_path, 1)
    with pytest.raises(ConfigError, match=r"MB free but the run needs about .* MB") as info:
        check_room(tmp_path, 2**62)
    assert str(tmp_path) in info.value.message and "\n" not in info.value.message


def test_abandon_removes_the_staged_files(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path, "demo", RUN_ID)
    run.path("a.mp4").write_bytes(b"a")
    run.abandon()
    assert list((tmp_path / "demo").iterdir()) == []


@pytest.mark.parametrize(("slug", "run_id"), [("../up", RUN_ID), ("Demo", RUN_ID), ("demo", "x/y")])
def test_unsafe_names_are_refused(tmp_path: Path, slug: str, run_id: str) -> None:
    with pytest.raises(StorageError, match="not a safe directory name"):
        RunDirectory(tmp_path, slug, run_id)
    assert not list(tmp_path.iterdir())


def test_a_file_name_cannot_leave_the_folder(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path, "demo", RUN_ID)
    for name in ("../escape.mp4", "sub/dir.mp4"):
        with pytest.raises(StorageError, match="not a plain file name"):
            run.path(name)


def test_write_json_atomic_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "index.json"
    write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]
    with pytest.raises(StorageError):
        write_json_atomic(tmp_path / "missing" / "x.json", {})
