"""Copy what does not change, decode once for every variant: checked by probing the files.

The service-shaped clips here are the shared 640x360 25 fps H.264/AAC scenes; the preset is
web-1080p at that size, so its picture is exactly what the service delivered.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from avatarpipe.errors import MediaError
from avatarpipe.media.ffmpeg import ffmpeg_exe, probe
from avatarpipe.media.loudness import measure_loudness
from avatarpipe.media.postprocess import PostJob, process_outputs, render_output, render_outputs
from avatarpipe.media.presets import Preset, load_preset
from avatarpipe.media.subtitles import cues_from_word_boundaries
from avatarpipe.processes import run_child

if TYPE_CHECKING:
    from conftest import Clips

SERVICE_SHAPED: dict[str, Any] = {"width": 640, "height": 360, "speed": "ultrafast"}
WORDS = [
    {"Text": "Welcome", "AudioOffset": 100, "Duration": 400},
    {"Text": "back.", "AudioOffset": 520, "Duration": 300},
]


def preset(**extra: Any) -> Preset:
    return load_preset("web-1080p", {**SERVICE_SHAPED, **extra})


def video_packets(path: Path) -> list[tuple[str, str]]:
    """(size, md5) of every video packet, read by stream copy (``framemd5``)."""
    proc = run_child(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
         "-f", "framemd5", "-"]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(",") for line in proc.stdout.splitlines() if not line.startswith("#")]
    return [(row[4].strip(), row[5].strip()) for row in rows]


def test_copied_picture_is_bit_identical_and_audio_on_target(clips: Clips, tmp_path: Path) -> None:
    out = tmp_path / "web.mp4"
    result = render_output(
        PostJob(
            scenes=[clips.scene_a],
            preset=preset(contact_sheet=True),
            out_path=out,
            scene_cues=[cues_from_word_boundaries(WORDS)],
        )
    )
    assert video_packets(out) == video_packets(clips.scene_a)
    assert result.copied_streams == ["video"]
    manifest = result.to_manifest()
    assert manifest["video"]["copied"] is True and manifest["video"]["reencoded_because"] is None
    assert manifest["copied_streams"] == ["video"]
    # only the audio was processed: on target, true peak under the ceiling once encoded
    loud = measure_loudness(out)
    assert loud.integrated_lufs == pytest.approx(-16.0, abs=0.5)
    assert loud.true_peak_dbtp <= -1.5
    assert result.loudness_mode == "linear"
    info = probe(out)
    assert [s.kind for s in info.streams] == ["video", "audio", "subtitle"]
    assert info.audio is not None and (info.audio.codec, info.audio.sample_rate) == ("aac", 48000)
    # stills of a copied picture still come out of the same pass
    assert Image.open(out.with_suffix(".poster.png")).size == (640, 360)
    assert Image.open(out.with_suffix(".sheet.png")).size == (4 * 160, 3 * 90)


def test_copied_scenes_and_conformed_intro_join_by_stream_copy(
    clips: Clips, tmp_path: Path
) -> None:
    """Scenes join packet for packet; an intro of another shape is conformed once, then cached."""
    cache = tmp_path / "cache"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    job = PostJob(
        scenes=[clips.scene_a, clips.scene_b],
        intro=clips.intro,  # 320x240 @30 fps, no audio
        preset=preset(thumbnail=False),
        out_path=tmp_path / "a" / "joined.mp4",
        cache_dir=cache,
    )
    result = render_output(job)
    assert result.copied_streams == ["video"], result.video_reencoded_because
    packets = video_packets(result.path)
    scene_packets = video_packets(clips.scene_a) + video_packets(clips.scene_b)
    assert len(packets) == 25 + 75  # 1 s of intro at 25 fps, then 3 s of scenes
    assert packets[25:] == scene_packets
    assert result.duration_s == pytest.approx(4.0, abs=0.08)
    conformed = list(cache.iterdir())
    assert len(conformed) == 1
    stamp = conformed[0].stat().st_mtime_ns
    again = render_output(PostJob(**{**job.__dict__, "out_path": tmp_path / "b" / "joined.mp4"}))
    assert again.copied_streams == ["video"]
    assert [p.stat().st_mtime_ns for p in cache.iterdir()] == [stamp]  # reused, not re-encoded


@pytest.mark.parametrize(
    ("extra", "logo", "reason"),
    [
        ({"video_copy": "never"}, False, "video_copy: never"),
        ({}, True, "logo"),
        ({"fps": 30}, False, "25.0 fps, the preset delivers 30"),
        ({"video_bitrate_kbps": 50}, False, "over the preset's cap of 75 kb/s"),
    ],
)
def test_what_changes_the_picture_is_reencoded_and_says_why(
    clips: Clips, tmp_path: Path, extra: dict[str, Any], logo: bool, reason: str
) -> None:
    result = render_output(
        PostJob(
            scenes=[clips.scene_b],
            preset=preset(thumbnail=False, loudness={"enabled": False}, **extra),
            out_path=tmp_path / "out.mp4",
            logo=clips.logo if logo else None,
        )
    )
    assert result.copied_streams == []
    assert result.video_reencoded_because is not None and reason in result.video_reencoded_because
    assert video_packets(result.path) != video_packets(clips.scene_b)


def test_nothing_to_do_copies_audio_too(clips: Clips, tmp_path: Path) -> None:
    result = render_output(
        PostJob(
            scenes=[clips.scene_b],
            preset=preset(thumbnail=False, loudness={"enabled": False}, audio_bitrate_kbps=96),
            out_path=tmp_path / "out.mp4",
        )
    )
    assert result.copied_streams == ["video", "audio"]


def test_variants_of_one_pass_match_separate_ones(clips: Clips, tmp_path: Path) -> None:
    base = preset(thumbnail=False)
    aspects = ("16:9", "9:16", "1:1")
    (tmp_path / "one").mkdir()
    (tmp_path / "sep").mkdir()

    def job(folder: str, aspect: str) -> PostJob:
        name = f"v{aspect.replace(':', 'x')}.mp4"
        return PostJob(
            scenes=[clips.scene_a],
            preset=base.for_aspect(aspect),  # type: ignore[arg-type]
            out_path=tmp_path / folder / name,
        )

    together = render_outputs([job("one", a) for a in aspects])
    separate = [render_output(job("sep", a)) for a in aspects]
    assert [r.pass_outputs for r in together] == [3, 3, 3]
    for one, sep in zip(together, separate, strict=True):
        a, b = probe(one.path), probe(sep.path)
        assert a.video is not None and b.video is not None
        assert (a.video.codec, a.video.width, a.video.height, a.video.fps) == (
            b.video.codec,
            b.video.width,
            b.video.height,
            b.video.fps,
        )
        assert [s.kind for s in a.streams] == [s.kind for s in b.streams]
        assert one.duration_s == pytest.approx(sep.duration_s, abs=0.04)
        assert one.copied_streams == sep.copied_streams
        assert measure_loudness(one.path).integrated_lufs == pytest.approx(-16.0, abs=0.5)
    assert [(r.info.video.width, r.info.video.height) for r in together if r.info.video] == [
        (640, 360),
        (360, 640),
        (360, 360),
    ]
    assert together[0].copied_streams == ["video"]
    assert video_packets(together[0].path) == video_packets(clips.scene_a)


def test_process_outputs_makes_a_scripts_variants_in_one_pass(clips: Clips, tmp_path: Path) -> None:
    base = preset(thumbnail=False, loudness={"enabled": False})
    jobs = [
        PostJob(scenes=[clips.scene_b], preset=base, out_path=tmp_path / "a.mp4"),
        PostJob(scenes=[clips.scene_a], preset=base, out_path=tmp_path / "other.mp4"),
        PostJob(
            scenes=[clips.scene_b], preset=base.for_aspect("1:1"), out_path=tmp_path / "a-1x1.mp4"
        ),
    ]
    results = process_outputs(jobs)
    assert [r.path.name for r in results] == ["a.mp4", "other.mp4", "a-1x1.mp4"]
    assert [r.pass_outputs for r in results] == [2, 1, 2]


def test_outputs_of_one_pass_must_share_their_parts(clips: Clips, tmp_path: Path) -> None:
    jobs = [
        PostJob(scenes=[clips.scene_a], preset=preset(), out_path=tmp_path / "a.mp4"),
        PostJob(scenes=[clips.scene_b], preset=preset(), out_path=tmp_path / "b.mp4"),
    ]
    with pytest.raises(MediaError, match="same scenes"):
        render_outputs(jobs)
    assert list(tmp_path.iterdir()) == []


def test_true_peak_stays_under_the_ceiling_when_loudnorm_must_compress(
    clips: Clips, tmp_path: Path
) -> None:
    """A target a gain alone cannot reach under the ceiling: dynamic mode, peak still under."""
    result = render_output(
        PostJob(
            scenes=[clips.scene_a],
            preset=preset(thumbnail=False, loudness={"target_lufs": -9.0, "true_peak_dbtp": -2.0}),
            out_path=tmp_path / "loud.mp4",
        )
    )
    assert result.loudness_mode == "dynamic"
    assert result.copied_streams == ["video"]
    loud = measure_loudness(result.path)
    assert loud.true_peak_dbtp <= -2.0
    assert loud.integrated_lufs == pytest.approx(-9.0, abs=1.0)
