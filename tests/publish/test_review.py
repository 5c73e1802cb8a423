"""The review page: ``index.html`` in every run folder (and one page for a bulk run) plays every
video from the folder itself, in a real headless Chromium.

The videos come from a real bulk run (``script-to-video`` on the emulator with its real renderer,
real ffmpeg). Debian's
Chromium plays H.264/AAC in .mp4 (checked here with ``canPlayType`` and by playing the files), so
the check is the one a person makes: each player loads its file (``readyState`` >= 2, no
``error``), its duration matches the manifest, its poster image loads, its captions track loads.
A screenshot of the bulk page is kept in the test's folder.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flow_emu import Emu

from avatarpipe.emulator.config import EmulatorConfig
from avatarpipe.emulator.server import EmulatorServer
from avatarpipe.errors import StorageError
from avatarpipe.publish.review import (
    REVIEW_PAGE,
    bulk_page_path,
    write_bulk_page,
    write_review_page,
)
from flows.connections import SpeechTarget
from flows.script_to_video import RunOptions, script_to_video

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAST = {"width": 320, "height": 180, "speed": "ultrafast", "contact_sheet": False}
TEMPLATE = {
    "title": "Review {{ name }}",
    "slug": "review",
    "avatar": {"character": "lisa", "style": "casual-sitting"},
    "voice": {"name": "en-US-AvaNeural"},
    "scenes": [{"text": "Hello {{ name }}, this is your review page."}],
    "post": {"preset": "web-1080p", "variants": ["16:9"], "overrides": FAST},
}
# What every player reports once it has loaded (or failed to load) its file and poster.
PLAYERS = """async () => {
  const videos = [...document.querySelectorAll('video')];
  const ready = v => new Promise(done => {
    if (v.error || v.readyState >= 2) return done();
    v.addEventListener('loadeddata', done, {once: true});
    v.addEventListener('error', done, {once: true});
    v.load();
  });
  const image = src => new Promise(done => {
    const img = new Image();
    img.onload = () => done(img.naturalWidth);
    img.onerror = () => done(0);
    img.src = src;
  });
  await Promise.all(videos.map(ready));
  return Promise.all(videos.map(async v => {
    for (const t of v.textTracks) t.mode = 'showing';
    const tracks = [...v.querySelectorAll('track')];
    await Promise.all(tracks.map(t => t.readyState >= 2 ? null : new Promise(done => {
      t.addEventListener('load', done, {once: true});
      t.addEventListener('error', done, {once: true});
    })));
    return {
      src: v.getAttribute('src'), readyState: v.readyState, duration: v.duration,
      error: v.error && v.error.code, width: v.videoWidth, expected: +v.dataset.duration,
      poster: v.poster ? await image(v.poster) : -1,
      tracks: tracks.map(t => t.readyState), cues: [...v.textTracks].map(t => t.cues ? t.cues.length : 0),
    };
  }));
}"""


@pytest.fixture(scope="module")
def bulk_run(
    tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> Iterator[tuple[Path, list[Path]]]:
    """A real bulk run of two rows: the output root and the rows' published folders."""
    tmp = tmp_path_factory.mktemp("review")
    template = tmp / "review.yaml"
    template.write_text(yaml.safe_dump(TEMPLATE, sort_keys=False))
    rows = tmp / "rows.csv"
    rows.write_text('id,name\nada,Ada\nbob,"Bob <b>&amp; ""Co"""\n', encoding="utf-8")
    # The real renderer: its clips carry word timings, so the videos get captions files.
    config = EmulatorConfig(port=0, state_dir=tmp / "emu", time_scale=0.0, renderer="real")
    emu = Emu(EmulatorServer(config).start())
    try:
        published = script_to_video(
            str(template),
            SpeechTarget(endpoint=emu.url, backend="emulator", requests_per_minute=6000),
            RunOptions(out_dir=str(tmp / "out"), poll_interval_s=0.2),
            str(rows),
        )
    finally:
        emu.close()
    yield tmp / "out", [Path(p.folder) for p in published]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium (the Debian package) driven by Playwright, with a fresh profile."""
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run `make chromium` (part of `make test`)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        try:
            yield context
        finally:
            context.close()


def _open(chromium: Any, page_file: Path) -> tuple[Any, list[str]]:
    page = chromium.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_file.as_uri())
    return page, requests


def _check_players(players: list[dict[str, Any]], count: int) -> None:
    assert len(players) == count, players
    for player in players:
        assert player["error"] is None, player
        assert player["readyState"] >= 2, player
        assert player["width"] > 0, player
        assert player["duration"] == pytest.approx(player["expected"], abs=0.1), player
        assert player["poster"] > 0, f"the poster did not load: {player}"
        assert player["tracks"] == [2], f"the captions track did not load: {player}"
        assert player["cues"][0] >= 1, player


def test_the_chromium_here_plays_h264_in_mp4(chromium: Any) -> None:
    """The premise of the player checks: Debian's Chromium has the H.264 and AAC decoders."""
    page = chromium.new_page()
    mp4 = 'video/mp4; codecs="avc1.640028, mp4a.40.2"'
    assert (
        page.evaluate(f"() => document.createElement('video').canPlayType('{mp4}')") == "probably"
    )
    page.close()


def test_each_run_folder_page_plays_its_videos(
    bulk_run: tuple[Path, list[Path]], chromium: Any
) -> None:
    _out, folders = bulk_run
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        page, requests = _open(chromium, folder / REVIEW_PAGE)
        players = page.evaluate(PLAYERS)
        _check_players(players, len(manifest["outputs"]))
        assert [p["src"] for p in players] == [o["path"] for o in manifest["outputs"]]
        text = page.inner_text("body")
        for output in manifest["outputs"]:
            assert output["sha256"] in text
        assert f"${manifest['billing']['cost_usd']:.2f} billed" in text
        assert all(url.startswith("file://") for url in requests), requests
        page.close()


def test_the_bulk_page_lists_every_row_and_plays_them(
    bulk_run: tuple[Path, list[Path]], chromium: Any, tmp_path: Path
) -> None:
    out, folders = bulk_run
    run_id = folders[0].name
    page_file = bulk_page_path(out, run_id)
    page, requests = _open(chromium, page_file)
    players = page.evaluate(PLAYERS)
    _check_players(players, len(folders))
    assert [p["src"] for p in players] == [
        f"{f.parent.name}/{run_id}/{f.parent.name}.mp4" for f in folders
    ]
    # The row's hostile name is shown as text, not markup.
    assert page.locator("h2").all_inner_texts() == ["Review Ada", 'Review Bob <b>&amp; "Co"']
    assert all(url.startswith("file://") for url in requests), requests
    shot = tmp_path / "review-bulk.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"\n[review] screenshot {shot}")
    page.close()


def test_the_page_is_relative_self_contained_and_escaped(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "a b.vtt").write_text("WEBVTT\n")
    (tmp_path / "scene.vtt").write_text("WEBVTT\n")
    manifest = {
        "title": '<script>alert("x")</script>',
        "slug": "x",
        "run_id": "r1",
        "billing": {"cost_usd": 0.25, "avatar_seconds": 25},
        "outputs": [
            {
                "path": "a b.mp4",
                "sha256": "0" * 64,
                "size_bytes": 2048,
                "duration_s": 61.5,
                "subtitles": ["a b.srt", "a b.vtt"],
                "thumbnail": 'p"q.png',
                # A scene's own captions (outside the folder) are not the video's track.
                "assets": [{"role": "scene captions", "path": str(tmp_path / "scene.vtt")}],
            },
            {"path": "c.webm", "sha256": "1" * 64, "duration_s": 2, "subtitles": ["c.vtt"]},
        ],
    }
    html = write_review_page(folder, manifest).read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert 'src="a%20b.mp4"' in html and 'poster="p%22q.png"' in html
    assert html.count("<track ") == 1, "a track only for a .vtt that exists"
    assert '<track kind="captions" src="data:text/vtt;charset=utf-8;base64,V0VCVlRUCg=="' in html
    assert 'href="a%20b.vtt"' in html, "the captions file is linked too"
    assert "http:" not in html and "https:" not in html and "<link" not in html
    assert "1:01.5" in html and "$0.25 billed (25 avatar seconds)" in html
    assert not list(folder.glob(".*.tmp"))


def test_bulk_page_needs_the_rows_manifests(tmp_path: Path) -> None:
    (tmp_path / "row" / "r1").mkdir(parents=True)
    with pytest.raises(StorageError, match="manifest.json"):
        write_bulk_page(tmp_path, "r1", [tmp_path / "row" / "r1"], "t")
    assert not bulk_page_path(tmp_path, "r1").exists()
