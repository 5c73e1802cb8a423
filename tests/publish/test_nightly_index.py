"""The nightly index and the script source (folder side; the blob side runs in tests/stack)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avatarpipe.errors import ConfigError, StorageError
from avatarpipe.publish.nightly_index import (
    INDEX_SCHEMA,
    NightlyResult,
    ScriptIndex,
    collect_scripts,
    index_for,
    source_key,
    source_store,
)
from avatarpipe.publish.release import PublishedVideo
from avatarpipe.settings import load_settings


def _published(folder: str) -> PublishedVideo:
    return PublishedVideo(
        slug="a", folder=folder, videos=[f"{folder}/a.mp4"], manifest="m", duration_s=1.0
    )


def test_an_absent_index_is_empty_and_a_render_is_remembered(tmp_path: Path) -> None:
    index = ScriptIndex(path=tmp_path / "idx" / "index.json").load()
    assert index.entries == {} and index.changed("a.yaml", "h1")
    assert index.record("a.yaml", "h1", [_published("/out/a/1")]) == ["/out/a/1"]
    again = ScriptIndex(path=tmp_path / "idx" / "index.json").load()
    assert not again.changed("a.yaml", "h1") and again.changed("a.yaml", "h2")
    entry = again.entries["a.yaml"]
    assert entry["folders"] == ["/out/a/1"] and entry["videos"] == ["a.mp4"]
    data = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert data["schema"] == INDEX_SCHEMA


def test_scripts_gone_from_the_source_are_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    index = ScriptIndex(path=path).load()
    index.record("a.yaml", "h1", [])
    index.record("b.yaml", "h2", [])
    index.keep_only({"b.yaml"})
    assert set(ScriptIndex(path=path).load().entries) == {"b.yaml"}


@pytest.mark.parametrize(
    ("text", "match"), [("{not json", "is not JSON"), ('{"schema": "other"}', "not an")]
)
def test_a_broken_index_is_a_storage_error(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "index.json"
    path.write_text(text)
    with pytest.raises(StorageError, match=match):
        ScriptIndex(path=path).load()


def test_collect_lists_only_scripts_sorted(tmp_path: Path) -> None:
    for name in ("b.yaml", "a.yml", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub.yaml").mkdir()
    paths, folder = collect_scripts(str(tmp_path), tmp_path / "out", None)
    assert [Path(p).name for p in paths] == ["a.yml", "b.yaml"]
    assert folder == str(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        collect_scripts(str(tmp_path / "missing"), tmp_path / "out", None)


def test_a_folder_source_has_its_index_beside_the_outputs(tmp_path: Path) -> None:
    index = index_for(str(tmp_path / "inbox"), tmp_path / "out", None)
    assert index.path is not None and index.path.parent == tmp_path / "out" / ".nightly"
    assert index.path.name.startswith("index-") and index.path.suffix == ".json"


def test_a_blob_source_needs_a_blob_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AVATARPIPE_BLOB_CONNECTION_STRING", "AVATARPIPE_BLOB_ACCOUNT_URL"):
        monkeypatch.delenv(var, raising=False)
    conf = load_settings()
    assert source_store("inbox", conf) is None
    with pytest.raises(ConfigError, match="AVATARPIPE_BLOB_CONNECTION_STRING"):
        source_store("blob:inbox", conf)


def test_source_keys_are_safe_and_distinct() -> None:
    a, b = source_key("/srv/Scripts/Inbox"), source_key("/srv/scripts/inbox")
    assert a != b and a.startswith("srv-scripts-inbox-")
    assert source_key("").startswith("root-")


def test_a_sweep_with_failures_raises_naming_the_first() -> None:
    assert NightlyResult(source="s", rendered=["a"]).error() is None
    error = NightlyResult(
        source="s", skipped=["b"], failed={"c.yaml": "bad", "d.yaml": "x"}
    ).error()
    assert error is not None
    assert (
        error.message
        == "nightly s: 2 script(s) failed (0 rendered, 1 unchanged); first: c.yaml: bad"
    )
