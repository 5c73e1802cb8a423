"""The run summary and posters: rows per video, totals, no secret, small embedded PNGs."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from PIL import Image

from avatarpipe.batch.run import JobRecord, SynthesisOutcome
from avatarpipe.publish.release import PublishedVideo
from avatarpipe.publish.summary import (
    POSTER_WIDTH,
    nightly_markdown,
    poster_data_url,
    run_summary,
)


def _image(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


def test_a_poster_is_downscaled_to_the_embed_width(tmp_path: Path) -> None:
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    Image.new("RGBA", (1280, 720), (10, 20, 30, 255)).save(big)
    Image.new("RGB", (200, 100)).save(small)
    assert _image(poster_data_url(big)).size == (POSTER_WIDTH, 180)
    assert _image(poster_data_url(small)).size == (200, 100), "never upscaled"


def _published(tmp_path: Path) -> PublishedVideo:
    folder = tmp_path / "demo" / "run"
    folder.mkdir(parents=True)
    (folder / "demo.mp4").write_bytes(b"x" * 2_500_000)
    (folder / "demo-9x16.mp4").write_bytes(b"y" * 500_000)
    Image.new("RGB", (64, 36)).save(folder / "demo.png")
    outputs = [
        {"path": "demo.mp4", "duration_s": 12.345, "thumbnail": "demo.png"},
        {"path": "demo-9x16.mp4", "thumbnail": "missing.png"},
    ]
    (folder / "manifest.json").write_text(json.dumps({"outputs": outputs}))
    return PublishedVideo(
        slug="demo",
        folder=str(folder),
        videos=[str(folder / "demo.mp4"), str(folder / "demo-9x16.mp4")],
        manifest=str(folder / "manifest.json"),
        duration_s=10.0,
    )


def test_the_summary_lists_every_video_and_the_billing(tmp_path: Path) -> None:
    item = _published(tmp_path)
    outcome = SynthesisOutcome(
        videos=[],
        jobs=[
            JobRecord(
                job_id="j1", scene_keys=["demo/scene-001"], status="Succeeded", billing_seconds=60
            ),
            JobRecord(
                job_id="j2", scene_keys=["demo/scene-002"], status="Succeeded", billing_seconds=30
            ),
        ],
        service_requests=7,
    )
    summary = run_summary([item], outcome, None)
    assert [(r["video"], r["duration_s"], r["size_mb"], r["blob_url"]) for r in summary.rows] == [
        ("demo.mp4", 12.35, 2.5, ""),
        ("demo-9x16.mp4", 10.0, 0.5, ""),  # no duration in the manifest: the run's
    ]
    assert summary.posters == [("demo: demo.mp4", Path(item.folder) / "demo.png")]
    md = summary.markdown
    assert "- scripts published: **1**" in md
    assert "- videos: **2**, 22.4 s, 3.00 MB" in md
    assert "- avatar seconds billed: **90** (estimate $0.90 at $0.60/min)" in md
    assert "- batch jobs: 2; service requests: 7" in md
    assert f"| demo | demo.mp4 | 12.35 | 2.5 | `{item.folder}` |" in md


def test_an_unreadable_manifest_still_gives_rows(tmp_path: Path) -> None:
    item = _published(tmp_path)
    Path(item.manifest).write_text("{broken")
    summary = run_summary([item], SynthesisOutcome(videos=[], jobs=[], service_requests=0), None)
    assert [r["duration_s"] for r in summary.rows] == [10.0, 10.0]
    assert summary.posters == []


def test_the_nightly_summary_names_every_script() -> None:
    md = nightly_markdown(
        "blob:inbox",
        [{"script": "a.yaml", "sha256": "h", "folder": "/out/a/1"}],
        ["b.yaml"],
        {"c.yaml": "scenes: at least one scene"},
    )
    assert md.splitlines() == [
        "# avatarpipe nightly sweep",
        "",
        "- source: `blob:inbox`",
        "- rendered: **1**, unchanged: 1, failed: **1**",
        "",
        "- rendered `a.yaml` -> `/out/a/1`",
        "- unchanged `b.yaml`",
        "- FAILED `c.yaml`: scenes: at least one scene",
    ]
