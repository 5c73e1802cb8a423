"""The nightly sweep renders only new or changed scripts (emulator + real Prefect API)."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from azurite_fixture import Azurite
from flow_emu import Emu

sys.path.insert(0, str(Path(__file__).parent))
from scripts_fixture import write_script  # noqa: E402

from avatarpipe.media.ffmpeg import probe  # noqa: E402
from avatarpipe.storage.blob import BlobStore  # noqa: E402
from flows.connections import SpeechTarget  # noqa: E402
from flows.nightly import nightly  # noqa: E402
from flows.script_to_video import RunOptions  # noqa: E402

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _index(out: Path) -> dict[str, dict[str, object]]:
    [path] = (out / ".nightly").glob("index-*.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == "avatarpipe.nightly-index/1"
    return data["scripts"]  # type: ignore[no-any-return]


def test_nightly_renders_only_new_or_changed_scripts(emu: Emu, tmp_path: Path) -> None:
    scripts = tmp_path / "inbox"
    out = tmp_path / "out"
    write_script(scripts, "alpha", "Alpha news", "Alpha says hello.")
    write_script(scripts, "beta", "Beta news", "Beta says hello.")
    target = SpeechTarget(
        endpoint=emu.url,
        backend="emulator",
        requests_per_minute=6000,
        rate_limit_name=f"rl-nightly-{uuid.uuid4().hex[:6]}",
    )
    options = RunOptions(out_dir=str(out), poll_interval_s=0.2, timeout_s=120)

    first = nightly(str(scripts), target, options)
    assert sorted(first.rendered) == ["alpha.yaml", "beta.yaml"] and not first.skipped
    assert emu.stats()["jobs_created"] == 2
    index = _index(out)
    assert set(index) == {"alpha.yaml", "beta.yaml"}
    for folder in first.folders:
        [video] = Path(folder).glob("*.mp4")
        info = probe(video)
        assert info.video is not None and (info.video.width, info.video.height) == (320, 180)

    again = nightly(str(scripts), target, options)
    assert again.rendered == [] and sorted(again.skipped) == ["alpha.yaml", "beta.yaml"]
    assert emu.stats()["jobs_created"] == 2, "unchanged scripts must not be rendered again"

    write_script(scripts, "beta", "Beta news", "Beta has changed its words.")
    (scripts / "broken.yaml").write_text("title: Broken\nscenes: []\n", encoding="utf-8")
    state = nightly(str(scripts), target, options, return_state=True)
    assert state.is_failed(), "a broken script fails the sweep (after the others ran)"
    assert "broken.yaml" in str(state.message) or "broken.yaml" in repr(
        state.result(raise_on_failure=False)
    )
    assert emu.stats()["jobs_created"] == 3, "only the changed script is rendered"
    after = _index(out)
    assert after["alpha.yaml"] == index["alpha.yaml"]
    assert after["beta.yaml"]["sha256"] != index["beta.yaml"]["sha256"]
    assert "broken.yaml" not in after, "a failed script keeps no hash: it is retried next time"
    assert len(list((out / "beta-news").iterdir())) == 2, "two published runs of beta"


@pytest.mark.azurite
def test_nightly_over_a_blob_prefix_keeps_its_index_in_the_container(
    emu: Emu, azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = f"nightly-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("AVATARPIPE_BLOB_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("AVATARPIPE_BLOB_CONTAINER", container)
    store = BlobStore.from_connection_string(azurite.connection_string, container)
    store.ensure_container()
    local = write_script(tmp_path / "src", "gamma", "Gamma news", "Gamma says hello.")
    store.upload(local, "inbox/gamma.yaml")
    target = SpeechTarget(
        endpoint=emu.url,
        backend="emulator",
        requests_per_minute=6000,
        rate_limit_name=f"rl-blob-{uuid.uuid4().hex[:6]}",
    )
    options = RunOptions(out_dir=str(tmp_path / "out"), poll_interval_s=0.2, timeout_s=120)

    first = nightly("blob:inbox", target, options)
    assert first.rendered == ["gamma.yaml"]
    [index_name] = store.list_names(".avatarpipe/nightly/")
    index = json.loads(store.read_bytes(index_name))
    assert set(index["scripts"]) == {"gamma.yaml"}
    published = [n for n in store.list_names("gamma-news/") if n.endswith(".mp4")]
    assert len(published) == 1, "the video was published to the same container"

    assert nightly("blob:inbox", target, options).skipped == ["gamma.yaml"]
    write_script(tmp_path / "src", "gamma", "Gamma news", "Gamma changed.")
    store.upload(local, "inbox/gamma.yaml")
    assert nightly("blob:inbox", target, options).rendered == ["gamma.yaml"]
    assert emu.stats()["jobs_created"] == 2
