"""Reading the subtitles the service delivered with a scene: a sidecar file or a soft track."""

from __future__ import annotations

import tempfile
from pathlib import Path

from avatarpipe.errors import InvalidInputError
from avatarpipe.media.ffmpeg import probe, run_ffmpeg
from avatarpipe.media.subtitles import Cue, parse_subtitles

__all__ = ["scene_cues"]


def scene_cues(video: Path) -> list[Cue]:
    """The subtitle cues of one scene video, on its own timeline.

    Looks for a sidecar ``.vtt``/``.srt`` (``subtitleType: external_file``), then for a subtitle
    track inside the video (``soft_embedded``). Burned-in or absent subtitles give no cues.

    Args:
        video: A downloaded scene.

    Returns:
        The cues, possibly empty.

    Raises:
        MediaError: The video cannot be read.
    """
    for suffix in (".vtt", ".srt"):
        sidecar = video.with_suffix(suffix)
        if sidecar.is_file():
            try:
                return parse_subtitles(sidecar)
            except InvalidInputError:
                return []
    if not probe(video).of_kind("subtitle"):
        return []
    with tempfile.TemporaryDirectory(prefix="avatarpipe-subs-") as tmp:
        out = Path(tmp) / "track.vtt"
        run_ffmpeg(
            ["-y", "-i", str(video), "-map", "0:s:0", "-f", "webvtt", str(out)],
            what=f"read subtitles of {video.name}",
        )
        try:
            return parse_subtitles(out)
        except InvalidInputError:
            return []
