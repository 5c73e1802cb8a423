"""The emulator's renderer: one batch input to a finished talking-avatar video.

Speech first (eSpeak NG, streamed to a WAV with word, sentence and phoneme timings), then the
presenter's sprites (drawn once per character and cached), a background frame composed once, the
per-frame head track as an ffconcat list, subtitles, and a single ffmpeg run. Files get their
final names only when complete.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from avatarpipe.emulator.render.avatar import SpriteSet, sprites_for
from avatarpipe.emulator.render.speech import SpeechResult, synthesize
from avatarpipe.emulator.render.ssml import Pause, Say, parse_input
from avatarpipe.emulator.render.timeline import (
    boundary_json,
    build_cues,
    gesture_expr,
    write_cue_strips,
    write_head_track,
    write_vtt,
)
from avatarpipe.emulator.render.video import VideoPlan, ffmpeg_args, plan_video
from avatarpipe.emulator.rendering import RenderedInput, RenderSpec
from avatarpipe.errors import MediaError, RequestValidationError
from avatarpipe.media.ffmpeg import run_ffmpeg

__all__ = ["AvatarRenderer", "render_input", "summary_result"]


def _write_atomic(dest: Path, text: str) -> None:
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, dest)


def _cover(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    w, h = size
    scale = max(w / img.width, h / img.height)
    rw, rh = max(w, round(img.width * scale)), max(h, round(img.height * scale))
    img = img.resize((rw, rh), Image.Resampling.LANCZOS)
    left, top = (rw - w) // 2, (rh - h) // 2
    return img.crop((left, top, left + w, top + h))


def _base_frame(spec: RenderSpec, plan: VideoPlan, sprites: SpriteSet, dest: Path) -> None:
    if spec.background_image is not None:
        try:
            with Image.open(spec.background_image) as src:
                bg = _cover(src.convert("RGB"), plan.canvas).convert("RGBA")
        except (OSError, UnidentifiedImageError) as exc:
            raise RequestValidationError(
                f"avatarConfig.backgroundImage: {spec.background_image.name} is not a readable "
                "image"
            ) from exc
    else:
        bg = Image.new("RGBA", plan.canvas, plan.color)
    with Image.open(sprites.body) as body:
        bg.alpha_composite(body.convert("RGBA"))
    (bg if plan.transparent else bg.convert("RGB")).save(dest, compress_level=1)


class AvatarRenderer:
    """Renders batch inputs into videos with eSpeak NG speech and a lip-synced 2D presenter.

    Attributes:
        cache_dir: Where character sprites are cached (``None``: the default cache).
        work_dir: Where per-render scratch directories go (``None``: the system temp dir).
    """

    def __init__(self, cache_dir: Path | None = None, work_dir: Path | None = None) -> None:
        """Create a renderer.

        Args:
            cache_dir: Sprite cache directory; ``$AVATARPIPE_CACHE_DIR/sprites`` or
                ``~/.cache/avatarpipe/sprites`` when ``None``.
            work_dir: Parent of scratch directories; the system temp dir when ``None``.
        """
        self.cache_dir = cache_dir
        self.work_dir = work_dir

    def render(self, spec: RenderSpec, out_dir: Path, stem: str) -> RenderedInput:
        """Render ``spec`` to ``out_dir/<stem>.<mp4|webm>`` plus subtitle and boundary files.

        Args:
            spec: What to render.
            out_dir: Where the files go (created when missing).
            stem: File stem, e.g. ``0001``.

        Returns:
            The video and the extra files written beside it (``<stem>.vtt``,
            ``<stem>.word.json``, ``<stem>.sentence.json`` as asked).

        Raises:
            RequestValidationError: The spec asks for something impossible (a disallowed
                format/codec pair, transparency outside webm+vp9, bad SSML, nothing to say...).
            MediaError: Speech synthesis or ffmpeg failed.
        """
        plan = plan_video(spec)
        pieces = parse_input(
            spec.content,
            spec.input_kind,
            voice=spec.voice,
            rate=spec.rate,
            pitch=spec.pitch,
            volume=spec.volume,
        )
        if not any(isinstance(p, Say) or (isinstance(p, Pause) and p.ms > 0) for p in pieces):
            raise RequestValidationError("input content has no text to speak")
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="avatarpipe-render-", dir=self.work_dir) as tmp:
            work = Path(tmp)
            speech = synthesize(pieces, work / "speech.wav")
            try:
                sprites = sprites_for(
                    spec.character, spec.style, photo=spec.photo, cache_dir=self.cache_dir
                )
            except OSError as exc:
                raise MediaError(f"avatar sprites could not be cached: {exc}") from exc
            return self._compose(spec, plan, speech, sprites, work, out_dir, stem)

    def _compose(
        self,
        spec: RenderSpec,
        plan: VideoPlan,
        speech: SpeechResult,
        sprites: SpriteSet,
        work: Path,
        out_dir: Path,
        stem: str,
    ) -> RenderedInput:
        base = work / "base.png"
        _base_frame(spec, plan, sprites, base)
        seed = hashlib.sha256(f"{spec.character}\0{spec.content}".encode()).hexdigest()
        head_track = work / "heads.ffconcat"
        frames = speech.frames
        write_head_track(sprites.heads, speech.phonemes, frames, seed, head_track)

        extra: list[Path] = []
        cues = build_cues(speech.words, speech.duration_ms) if plan.subtitles != "none" else []
        vtt: Path | None = None
        cue_track: Path | None = None
        cue_height = max(48, plan.size[1] // 7)
        if cues and plan.subtitles == "soft_embedded":
            vtt = work / "subtitles.vtt"
            write_vtt(cues, vtt)
        elif cues and plan.subtitles == "hard_embedded":
            cue_track = work / "cues.ffconcat"
            write_cue_strips(cues, frames, (plan.size[0], cue_height), work, cue_track)
        elif plan.subtitles == "external_file":
            external = out_dir / f"{stem}.vtt"
            partial_vtt = out_dir / f".{stem}.vtt.partial"
            write_vtt(cues, partial_vtt)
            os.replace(partial_vtt, external)
            extra.append(external)

        video = out_dir / f"{stem}.{plan.ext}"
        partial = out_dir / f".{stem}.partial.{plan.ext}"
        args = ffmpeg_args(
            plan,
            base=base,
            head_track=head_track,
            head_pos=sprites.head_pos,
            amplitude=sprites.amplitude,
            nod_expr=gesture_expr(speech.marks, 10.0 * plan.canvas[1] / 1080),
            wav=speech.wav,
            frames=frames,
            cue_track=cue_track,
            cue_height=cue_height,
            vtt=vtt,
            out=partial,
        )
        try:
            run_ffmpeg(args, what=f"render {stem}.{plan.ext}", timeout=120 + 4 * frames / 25)
            os.replace(partial, video)
        finally:
            partial.unlink(missing_ok=True)

        if spec.word_boundary:
            path = out_dir / f"{stem}.word.json"
            _write_atomic(path, boundary_json(speech.words, "WordBoundary"))
            extra.append(path)
        if spec.sentence_boundary:
            path = out_dir / f"{stem}.sentence.json"
            _write_atomic(path, boundary_json(speech.sentences, "SentenceBoundary"))
            extra.append(path)
        return RenderedInput(
            video=video,
            duration_ms=speech.duration_ms,
            size_bytes=video.stat().st_size,
            characters=speech.characters,
            extra_files=extra,
        )


_DEFAULT = AvatarRenderer()


def render_input(spec: RenderSpec, out_dir: Path, stem: str) -> RenderedInput:
    """Render one input with the module's default :class:`AvatarRenderer`.

    Args:
        spec: What to render.
        out_dir: Where the files go.
        stem: File stem, e.g. ``0001``.

    Returns:
        The video and extra files.

    Raises:
        RequestValidationError: The spec asks for something impossible.
        MediaError: Speech synthesis or ffmpeg failed.
    """
    return _DEFAULT.render(spec, out_dir, stem)


def summary_result(spec: RenderSpec, video_file_name: str) -> dict[str, Any]:
    """Return one ``results[]`` entry of ``summary.json`` in the service's shape.

    Args:
        spec: The rendered input.
        video_file_name: The path the service reports (``<32hex>/<jobId>/0001.mp4``).

    Returns:
        ``{"texts", "status", "videoFileName", "TalkingAvatarCharacter",
        "TalkingAvatarStyle"}``; the style key is left out for avatars without one (custom).
    """
    entry: dict[str, Any] = {
        "texts": [spec.content],
        "status": "Succeeded",
        "videoFileName": video_file_name,
        "TalkingAvatarCharacter": spec.character,
    }
    if spec.style:
        entry["TalkingAvatarStyle"] = spec.style
    return entry
