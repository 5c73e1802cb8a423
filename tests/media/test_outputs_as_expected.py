"""Issue 17: the outputs are what a user asked for (captions, transparency, variants, assets).

Real parts throughout: the emulator with its real renderer answers over loopback HTTP, the
job's files are fetched by :func:`avatarpipe.batch.fetch.fetch_job`, one ffmpeg pass makes the
variants, and the written files are probed and decoded (alpha as raw RGBA, bands as pixels).
Clips are one short sentence (~1.5 s); variant frames are small (384x216 and its reframes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flow_emu import Emu
from PIL import Image

from avatarpipe.batch.fetch import download, fetch_job
from avatarpipe.batch.plan import JobOptions, VideoInput, plan_jobs
from avatarpipe.batch.wait import wait_until
from avatarpipe.connect import open_speech
from avatarpipe.emulator.render import AvatarRenderer
from avatarpipe.emulator.render.avatar import sprites_for
from avatarpipe.errors import WaitTimeoutError
from avatarpipe.hashing import file_digest
from avatarpipe.media.ffmpeg import run_ffmpeg
from avatarpipe.media.postprocess import PostJob, concat_copy, render_output, render_outputs
from avatarpipe.media.presets import load_preset
from avatarpipe.media.subtitles import Cue, parse_subtitles
from avatarpipe.media.tracks import scene_cues
from avatarpipe.media.video_pass import placement
from avatarpipe.publish.manifest import output_entries
from avatarpipe.settings import Settings
from avatarpipe.speech.models import (
    AvatarCoordinate,
    BatchAvatarConfig,
    BatchSynthesis,
    BatchSynthesisConfig,
    BatchSynthesisProperties,
    InputKind,
    SubtitleType,
    VideoCodec,
    VideoCrop,
    VideoFormat,
)
from avatarpipe.speech.ratelimit import UnlimitedBudget
from avatarpipe.storage.blob import BlobStore

if TYPE_CHECKING:
    from conftest import Clips

TEXT = "Lift with your legs, not your back."
GREEN = "#2E7D5BFF"
SMALL = {"width": 384, "height": 216, "thumbnail": False, "loudness": {"enabled": False}}
# Where to keep the checked frames for a person to look at: TEST_ARTIFACTS_DIR, when set.
ARTIFACTS = os.environ.get("TEST_ARTIFACTS_DIR")


@pytest.fixture(scope="module")
def sprites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sprites")


def _render_job(
    emu: Emu, tmp: Path, avatar: BatchAvatarConfig
) -> tuple[Path, list[dict[str, Any]], BatchSynthesis]:
    """Render one input on the emulator, fetch it; return the video, word boundaries, job."""
    options = JobOptions(
        avatar=avatar,
        synthesis=BatchSynthesisConfig(voice="en-US-AvaMultilingualNeural"),
        label="issue17",
    )
    [planned] = plan_jobs(
        [VideoInput(key="s1", content=TEXT, input_kind=InputKind.PLAIN_TEXT)], options
    )
    request = planned.request()
    request.properties = BatchSynthesisProperties(
        time_to_live_in_hours=1,
        wordBoundaryEnabled=True,  # type: ignore[call-arg]  # kept as an extra wire field
    )
    with open_speech(
        Settings(), endpoint=emu.url, backend="emulator", budget=UnlimitedBudget()
    ) as speech:
        api = speech.batch
        api.create_synthesis(planned.job_id, request)

        def done() -> BatchSynthesis | None:
            job = api.get_synthesis(planned.job_id)
            return job if job.status in ("Succeeded", "Failed") else None

        job = wait_until(
            done, interval=0.1, timeout=120, timed_out=lambda: WaitTimeoutError("render")
        )
        assert job.status == "Succeeded", job
        [video] = fetch_job(api, job, planned, tmp / "cache")
        # the service's word-boundary file, read like any result file (beside the video)
        assert job.outputs is not None and job.outputs.result is not None
        base, _, query = job.outputs.result.partition("?")
        words_url = base.rsplit("/", 1)[0] + "/0001.word.json?" + query
        words_file = tmp / "words.json"
        download(api.stream, words_url, words_file)
    return video.path, json.loads(words_file.read_text()), job


def _frame_png(video: Path, at: float, png: Path, *, alpha: bool = False) -> Image.Image:
    dec = ["-c:v", "libvpx-vp9"] if alpha else []
    run_ffmpeg(["-v", "error", "-y", *dec, "-ss", f"{at}", "-i", str(video), "-frames:v", "1",
                str(png)])  # fmt: skip
    return Image.open(png)


def _rgba(video: Path, width: int, height: int) -> bytes:
    """The first frame decoded with its alpha plane (libvpx: ffmpeg's own VP9 decoder drops it)."""
    out = video.with_suffix(".rgba")
    run_ffmpeg(["-v", "error", "-y", "-c:v", "libvpx-vp9", "-i", str(video), "-frames:v", "1",
                "-f", "rawvideo", "-pix_fmt", "rgba", str(out)])  # fmt: skip
    data = out.read_bytes()
    assert len(data) == width * height * 4
    return data


def _keep(src: Path, name: str) -> None:
    """Keep a frame for a person to look at, in ``TEST_ARTIFACTS_DIR`` when it is set."""
    if not ARTIFACTS:
        return
    try:
        folder = Path(ARTIFACTS)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(src.read_bytes())
    except OSError:
        pass


def _close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a[:3], b[:3], strict=True))


def test_external_captions_are_fetched_in_sync_and_variants_fill_the_frame(
    make_emu: Callable[..., Emu], sprites: Path, tmp_path: Path
) -> None:
    emu = make_emu(renderer=AvatarRenderer(cache_dir=sprites))
    avatar = BatchAvatarConfig(
        talking_avatar_character="lisa",
        talking_avatar_style="casual-sitting",
        video_format=VideoFormat.MP4,
        video_codec=VideoCodec.H264,
        subtitle_type=SubtitleType.EXTERNAL_FILE,
        background_color=GREEN,
        bitrate_kbps=600,
    )
    scene, words, _ = _render_job(emu, tmp_path, avatar)

    # the service's .vtt was downloaded beside the video, verified, and its cues follow the
    # word boundaries: each cue starts on a word and ends at (or just after) one
    service_vtt = scene.with_suffix(".vtt")
    assert service_vtt.is_file()
    cues = parse_subtitles(service_vtt)
    starts = [w["AudioOffset"] for w in words]
    ends = [w["AudioOffset"] + w["Duration"] for w in words]
    assert cues and cues[0].start_ms == pytest.approx(starts[0], abs=40)
    for cue in cues:
        assert min(abs(cue.start_ms - s) for s in starts) <= 40
    assert cues[-1].end_ms >= ends[-1] - 40
    assert scene_cues(scene) == cues

    base = load_preset("web-1080p", {**SMALL, "subtitles": "soft"})
    burn = load_preset("web-1080p", {**SMALL, "subtitles": "burn"})
    out = tmp_path / "out"
    out.mkdir()
    jobs = [
        PostJob(scenes=[scene], preset=base, out_path=out / "lesson.mp4", scene_cues=[cues],
                background=GREEN, caption_files=[service_vtt]),
        PostJob(scenes=[scene], preset=burn.for_aspect("9:16"), out_path=out / "lesson-9x16.mp4",
                scene_cues=[cues], background=GREEN, caption_files=[service_vtt]),
        PostJob(scenes=[scene], preset=base.for_aspect("1:1"), out_path=out / "lesson-1x1.mp4",
                scene_cues=[cues], background=GREEN, caption_files=[service_vtt]),
    ]  # fmt: skip
    wide, tall, square = render_outputs(jobs)

    # published captions: .vtt and .srt carry the service's cues on the output's timeline
    for r in (wide, tall, square):
        assert [p.suffix for p in r.subtitle_files] == [".srt", ".vtt"]
        for path in r.subtitle_files:
            assert parse_subtitles(path) == cues
    # the soft track is muxed in the 16:9, the 9:16 has them burned (no track)
    assert [s.kind for s in wide.info.streams] == ["video", "audio", "subtitle"]
    assert [s.kind for s in tall.info.streams] == ["video", "audio"]

    # the manifest names every caption file with its checksum
    [entry, *_] = output_entries([wide, tall, square])
    roles = {a["role"]: a for a in entry["assets"]}
    assert set(roles) == {"scene captions", "captions (srt)", "captions (vtt)"}
    assert roles["captions (vtt)"]["path"] == "lesson.vtt"
    assert all(len(a["sha256"]) == 64 for a in entry["assets"])

    # 9:16: reframed around the presenter, the bands above and below are the script's green
    assert tall.info.video is not None and (tall.info.video.width, tall.info.video.height) == (
        216,
        384,
    )
    assert tall.reframe is not None and "reframed" in (tall.video_reencoded_because or "")
    px, py, pw, ph = tall.reframe["placed"]
    assert py > 0 and py + ph < 384 and (px, pw) == (0, 216)
    png = tmp_path / "tall.png"
    frame = _frame_png(tall.path, 0.3, png).convert("RGB")
    green = (0x2E, 0x7D, 0x5B)
    for y in (2, py - 3, 384 - 3):
        for x in (3, 108, 212):
            assert _close(frame.getpixel((x, y)), green), (x, y, frame.getpixel((x, y)))
    assert not any(_close(frame.getpixel((x, 2)), (0, 0, 0), 30) for x in (3, 108, 212))
    # the face (the renderer's head sprite) is inside the frame, and inside the picture band
    sprite = sprites_for("lisa", "casual-sitting", photo=False, cache_dir=sprites)
    hx, hy = sprite.head_pos
    with Image.open(sprite.heads[("rest", False)]) as head:
        hw, hh = head.size
    fx0, fy0, fx1, fy1 = placement(tall.preset, 1920, 1080).map_box(
        (hx, hy, hx + hw, hy + hh), (1920, 1080)
    )
    assert 0 <= fx0 < fx1 <= 216 and py <= fy0 < fy1 <= py + ph
    # the burned caption sits in the bottom band (not over the chest): mid-cue, the band holds
    # white text pixels, the picture's lower part none
    band = frame.crop((0, py + ph, 216, 384))
    assert any(_close(p, (255, 255, 255), 40) for p in band.getdata())
    _keep(png, "issue17-9x16.png")

    # 1:1 fills the frame: no band at all, the presenter's head inside
    assert square.reframe is not None and square.reframe["placed"] == [0, 0, 216, 216]
    png = tmp_path / "square.png"
    frame = _frame_png(square.path, 0.3, png).convert("RGB")
    assert _close(frame.getpixel((3, 3)), green) and _close(frame.getpixel((212, 3)), green)
    _keep(png, "issue17-1x1.png")

    # 16:9 is the service's picture (only scaled), nothing cropped
    assert wide.reframe is None
    png = tmp_path / "wide.png"
    _frame_png(wide.path, 0.3, png)
    _keep(png, "issue17-16x9.png")


def test_a_transparent_script_gives_a_transparent_result(
    make_emu: Callable[..., Emu], sprites: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_emu(renderer=AvatarRenderer(cache_dir=sprites))
    avatar = BatchAvatarConfig(
        talking_avatar_character="lisa",
        talking_avatar_style="casual-sitting",
        video_format=VideoFormat.WEBM,
        video_codec=VideoCodec.VP9,
        subtitle_type=SubtitleType.NONE,
        background_color="#00000000",
        bitrate_kbps=600,
        # the upper middle quarter (head and shoulders): a quarter of the pixels to render
        video_crop=VideoCrop(
            top_left=AvatarCoordinate(x=480, y=0), bottom_right=AvatarCoordinate(x=1440, y=540)
        ),
    )
    scene, _, _ = _render_job(emu, tmp_path, avatar)
    assert scene.suffix == ".webm"
    out = tmp_path / "out"
    out.mkdir()
    jobs = [
        PostJob(scenes=[scene], preset=load_preset("web-transparent", SMALL),
                out_path=out / "clip.webm", background="#00000000"),
        PostJob(scenes=[scene], preset=load_preset("editor-prores", SMALL),
                out_path=out / "clip.mov", background="#00000000"),
        PostJob(scenes=[scene], preset=load_preset("web-1080p", SMALL),
                out_path=out / "clip.mp4", background="#00000000"),
    ]  # fmt: skip
    with caplog.at_level("WARNING"):
        webm, mov, mp4 = render_outputs(jobs)

    # VP9 with alpha in WebM: transparent outside the presenter, opaque on the face
    assert webm.info.video is not None and webm.info.video.codec == "vp9" and webm.info.video.alpha
    rgba = _rgba(webm.path, 384, 216)
    alpha = rgba[3::4]
    assert alpha[0] < 16 and alpha[383] < 16  # top corners: no presenter, see-through
    assert alpha[(100 * 384) + 192] > 240  # centre column at face height: opaque
    assert sum(1 for a in alpha if a < 255) > 0.3 * len(alpha)
    assert webm.to_manifest()["video"]["alpha"] == "kept"
    png = tmp_path / "alpha.png"
    _frame_png(webm.path, 0.3, png, alpha=True)
    _keep(png, "issue17-transparent-16x9.png")

    # ProRes 4444 with alpha in .mov for editors
    assert mov.info.video is not None and mov.info.video.codec == "prores" and mov.info.video.alpha

    # an h264 preset flattens: one warning line, and the manifest says so
    assert mp4.info.video is not None and not mp4.info.video.alpha
    assert mp4.to_manifest()["video"]["alpha"] == "flattened onto #000000"
    lines = [r.getMessage() for r in caplog.records if "carries no alpha" in r.getMessage()]
    assert len(lines) == 1 and "clip.mp4" in lines[0]
    assert mp4.warnings == lines
    assert mp4.to_manifest()["warnings"] == lines

    # --no-post joins by stream copy in the service's container: a webm stays a transparent webm
    joined = concat_copy([scene, scene], out / "joined.webm")
    assert joined.video is not None and joined.video.codec == "vp9"
    assert _rgba(joined.path, 960, 540)[3] < 16


def test_the_manifest_records_every_asset_with_its_checksum(clips: Clips, tmp_path: Path) -> None:
    preset = load_preset("web-1080p", {"width": 640, "height": 360, "thumbnail": False})
    result = render_output(
        PostJob(
            scenes=[clips.scene_b],
            preset=preset,
            out_path=tmp_path / "full.mp4",
            intro=clips.intro,
            outro=clips.outro,
            music=clips.music,
            logo=clips.logo,
            scene_cues=[[Cue(0, 800, "Hello")]],
        )
    )
    [entry] = output_entries([result])
    by_role = {a["role"]: a for a in entry["assets"]}
    expected = {"intro": clips.intro, "outro": clips.outro, "music": clips.music,
                "logo": clips.logo}  # fmt: skip
    for role, path in expected.items():
        assert by_role[role]["sha256"] == file_digest(path)
        assert by_role[role]["size_bytes"] == path.stat().st_size
    for kind in ("srt", "vtt"):
        published = tmp_path / f"full.{kind}"
        assert by_role[f"captions ({kind})"] == {
            "role": f"captions ({kind})",
            "path": published.name,
            "sha256": file_digest(published),
            "size_bytes": published.stat().st_size,
        }


def test_packed_jobs_fetch_each_inputs_captions_from_the_destination_container(
    emu: Emu, azurite: Any, tmp_path: Path
) -> None:
    store = BlobStore.from_connection_string(azurite.connection_string, "issue17")
    store.ensure_container()
    options = JobOptions(
        avatar=BatchAvatarConfig(
            talking_avatar_character="lisa",
            video_format=VideoFormat.MP4,
            video_codec=VideoCodec.H264,
            subtitle_type=SubtitleType.EXTERNAL_FILE,
        ),
        synthesis=BatchSynthesisConfig(voice="en-US-AvaMultilingualNeural"),
        label="packed",
    )
    inputs = [
        VideoInput(key=f"s{i}", content=text, input_kind=InputKind.PLAIN_TEXT)
        for i, text in enumerate(["First scene here.", "Second one."])
    ]
    [planned] = plan_jobs(inputs, options, pack=True)
    with open_speech(
        Settings(), endpoint=emu.url, backend="emulator", budget=UnlimitedBudget()
    ) as speech:
        api = speech.batch
        api.create_synthesis(planned.job_id, planned.request(store.container_sas_url(write=True)))

        def done() -> BatchSynthesis | None:
            job = api.get_synthesis(planned.job_id)
            return job if job.status in ("Succeeded", "Failed") else None

        job = wait_until(done, interval=0.1, timeout=60, timed_out=lambda: WaitTimeoutError("x"))
        videos = fetch_job(api, job, planned, tmp_path / "cache", blob_stream=store.stream)
    assert [v.path.name for v in videos] == ["0001.mp4", "0002.mp4"]
    for video, text in zip(videos, ["First scene here.", "Second one."], strict=True):
        [cue] = scene_cues(video.path)  # the placeholder writes one cue per input
        assert cue.text == text
