"""The 2D presenter: a look per character, and its sprites drawn once with Pillow.

A character is a body layer (neck, shoulders, clothes, maybe a chair) the size of the frame and
twelve head sprites: six mouth shapes (visemes) times eyes open/closed. ffmpeg composes them;
nothing here runs per frame. Sprites are cached on disk, keyed by everything that shapes them.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

__all__ = [
    "VISEMES",
    "Look",
    "SpriteSet",
    "default_cache_dir",
    "look_for",
    "sprites_for",
]

_SPRITE_VERSION = "3"
_SS = 2  # drawn at twice the size, then scaled down: cheap anti-aliasing
VISEMES = ("rest", "small", "wide", "round", "fv", "mbp")

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Look:
    """How a character looks.

    Attributes:
        skin: Skin colour.
        hair: Hair colour.
        hair_style: ``long``, ``bob``, ``short``, ``bun``, ``curly`` or ``buzz``.
        shirt: Shirt / top colour.
        jacket: Jacket colour, or ``None`` for none.
        accent: Tie or necklace colour.
        tie: A tie (else a necklace).
        eyes: Iris colour.
        lips: Lip colour.
        glasses: Whether the character wears glasses.
        beard: Whether the character has a beard.
    """

    skin: RGB
    hair: RGB
    hair_style: str
    shirt: RGB
    jacket: RGB | None
    accent: RGB
    tie: bool
    eyes: RGB
    lips: RGB
    glasses: bool = False
    beard: bool = False


_STANDARD: dict[str, Look] = {
    "lisa": Look(
        skin=(241, 200, 170),
        hair=(92, 58, 36),
        hair_style="long",
        shirt=(236, 240, 245),
        jacket=(38, 70, 120),
        accent=(210, 170, 60),
        tie=False,
        eyes=(70, 110, 150),
        lips=(196, 92, 100),
    ),
    "harry": Look(
        skin=(198, 150, 112),
        hair=(30, 28, 30),
        hair_style="short",
        shirt=(245, 245, 245),
        jacket=(90, 94, 104),
        accent=(170, 40, 50),
        tie=True,
        eyes=(70, 50, 35),
        lips=(160, 96, 84),
        glasses=True,
    ),
    "jeff": Look(
        skin=(245, 208, 180),
        hair=(214, 180, 110),
        hair_style="short",
        shirt=(90, 140, 205),
        jacket=None,
        accent=(40, 60, 110),
        tie=False,
        eyes=(80, 130, 90),
        lips=(186, 110, 100),
        beard=True,
    ),
    "lori": Look(
        skin=(128, 86, 60),
        hair=(24, 18, 16),
        hair_style="curly",
        shirt=(232, 128, 50),
        jacket=None,
        accent=(240, 210, 110),
        tie=False,
        eyes=(55, 35, 25),
        lips=(120, 58, 58),
    ),
    "max": Look(
        skin=(222, 172, 128),
        hair=(54, 40, 30),
        hair_style="buzz",
        shirt=(60, 130, 90),
        jacket=(34, 38, 44),
        accent=(230, 230, 230),
        tie=False,
        eyes=(60, 80, 60),
        lips=(170, 100, 90),
        beard=True,
    ),
    "meg": Look(
        skin=(250, 218, 196),
        hair=(176, 64, 34),
        hair_style="bob",
        shirt=(120, 70, 160),
        jacket=None,
        accent=(240, 240, 250),
        tie=False,
        eyes=(60, 120, 80),
        lips=(200, 80, 110),
        glasses=True,
    ),
}
_SKINS: list[RGB] = [
    (250, 218, 196),
    (241, 200, 170),
    (222, 172, 128),
    (198, 150, 112),
    (160, 110, 80),
    (128, 86, 60),
    (96, 64, 46),
]
_HAIRS: list[RGB] = [
    (24, 18, 16),
    (54, 40, 30),
    (92, 58, 36),
    (176, 64, 34),
    (214, 180, 110),
    (150, 150, 155),
    (70, 50, 90),
]
_CLOTHES: list[RGB] = [
    (38, 70, 120),
    (90, 94, 104),
    (60, 130, 90),
    (120, 70, 160),
    (232, 128, 50),
    (170, 40, 50),
    (30, 120, 130),
    (200, 170, 40),
    (50, 50, 55),
]
_EYES: list[RGB] = [(70, 110, 150), (70, 50, 35), (80, 130, 90), (55, 35, 25), (100, 100, 110)]
_STYLES = ("long", "bob", "short", "bun", "curly", "buzz")


def look_for(character: str, style: str | None = None) -> Look:
    """Return the look of a character: fixed for standard avatars, derived from the name else.

    Args:
        character: ``talkingAvatarCharacter`` (case-insensitive for standard names).
        style: ``talkingAvatarStyle``; ``business``/``formal`` styles add a jacket and tie.

    Returns:
        The look. The same name always gives the same look; different names differ.
    """
    key = character.strip().lower()
    if key in _STANDARD:
        look = _STANDARD[key]
    else:
        h = hashlib.sha256(key.encode()).digest()
        skin = _SKINS[h[0] % len(_SKINS)]
        shirt = _CLOTHES[h[3] % len(_CLOTHES)]
        jacket = _CLOTHES[h[4] % len(_CLOTHES)] if h[5] % 2 else None
        if jacket == shirt:
            jacket = None
        look = Look(
            skin=skin,
            hair=_HAIRS[h[1] % len(_HAIRS)],
            hair_style=_STYLES[h[2] % len(_STYLES)],
            shirt=shirt,
            jacket=jacket,
            accent=_CLOTHES[h[6] % len(_CLOTHES)],
            tie=bool(h[7] % 3 == 0),
            eyes=_EYES[h[8] % len(_EYES)],
            lips=_mix(skin, (190, 70, 80), 0.55),
            glasses=h[9] % 4 == 0,
            beard=h[10] % 4 == 0 and _STYLES[h[2] % len(_STYLES)] in ("short", "buzz", "curly"),
        )
    s = (style or "").lower()
    if any(w in s for w in ("business", "formal")) and look.jacket is None:
        look = Look(**{**look.__dict__, "jacket": (40, 44, 56), "tie": True})
    return look


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        int(a[0] + (b[0] - a[0]) * t),
        int(a[1] + (b[1] - a[1]) * t),
        int(a[2] + (b[2] - a[2]) * t),
    )


def _darker(c: RGB, f: float = 0.75) -> RGB:
    return (int(c[0] * f), int(c[1] * f), int(c[2] * f))


@dataclass(frozen=True)
class _Geom:
    """Where things go, in output pixels."""

    canvas: tuple[int, int]
    u: float  # scale: 1.0 at 1080p
    cx: int  # presenter's centre line
    head_top: int  # top of the head sprite

    @property
    def head_size(self) -> tuple[int, int]:
        return int(440 * self.u) // 2 * 2, int(560 * self.u) // 2 * 2

    @property
    def head_pos(self) -> tuple[int, int]:
        w, _ = self.head_size
        return self.cx - w // 2, self.head_top


def _geom(photo: bool) -> _Geom:
    if photo:
        return _Geom(canvas=(512, 512), u=0.8, cx=256, head_top=28)
    return _Geom(canvas=(1920, 1080), u=1.0, cx=960, head_top=110)


@dataclass(frozen=True)
class SpriteSet:
    """The drawn sprites of one character.

    Attributes:
        canvas: Output frame size (width, height).
        body: Frame-sized RGBA layer with the body (transparent elsewhere).
        heads: Head sprite per (viseme, eyes closed).
        head_pos: Top-left of the head sprite at rest, in frame pixels.
        amplitude: Idle-motion amplitude in pixels (x, y).
    """

    canvas: tuple[int, int]
    body: Path
    heads: dict[tuple[str, bool], Path]
    head_pos: tuple[int, int]
    amplitude: tuple[float, float]


def default_cache_dir() -> Path:
    """Return where sprites are cached: ``$AVATARPIPE_CACHE_DIR`` or ``~/.cache/avatarpipe``.

    Returns:
        The sprite cache directory (not created).
    """
    env = os.environ.get("AVATARPIPE_CACHE_DIR")
    if env:
        return Path(env) / "sprites"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "avatarpipe" / "sprites"


def sprites_for(
    character: str, style: str | None, *, photo: bool, cache_dir: Path | None = None
) -> SpriteSet:
    """Return a character's sprites, drawing and caching them on first use.

    Args:
        character: ``talkingAvatarCharacter``.
        style: ``talkingAvatarStyle``.
        photo: A photo avatar (512x512 close-up) rather than a 1920x1080 presenter.
        cache_dir: Where to cache; :func:`default_cache_dir` when ``None``.

    Returns:
        Paths of the sprites and where the head goes.

    Raises:
        OSError: The cache directory cannot be written.
    """
    look = look_for(character, style)
    sitting = "sitting" in (style or "").lower()
    g = _geom(photo)
    key = hashlib.sha256(repr((_SPRITE_VERSION, look, sitting, g)).encode()).hexdigest()[:16]
    root = (cache_dir or default_cache_dir()) / key
    heads = {
        (v, c): root / f"head_{v}_{'closed' if c else 'open'}.png"
        for v in VISEMES
        for c in (False, True)
    }
    body = root / "body.png"
    if not (body.is_file() and all(p.is_file() for p in heads.values())):
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root.parent))
        try:
            _draw_body(look, g, sitting).save(tmp / body.name, compress_level=1)
            for (v, c), path in heads.items():
                _draw_head(look, g, v, c).save(tmp / path.name, compress_level=1)
            try:
                tmp.rename(root)
            except OSError:
                if not root.is_dir():  # someone else won the race when it exists
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return SpriteSet(
        canvas=g.canvas,
        body=body,
        heads=heads,
        head_pos=g.head_pos,
        amplitude=(5.0 * g.u, 3.0 * g.u),
    )


def _draw_body(look: Look, g: _Geom, sitting: bool) -> Image.Image:
    w, h = g.canvas
    s = _SS
    img = Image.new("RGBA", (w * s, h * s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    u = g.u * s
    cx = g.cx * s
    top = g.head_top * s

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        return int(cx + x0 * u), int(top + y0 * u), int(cx + x1 * u), int(top + y1 * u)

    if sitting:
        d.rounded_rectangle(box(-330, 380, 330, 1200), radius=int(90 * u), fill=(70, 62, 58))
        d.rounded_rectangle(box(-300, 410, 300, 1200), radius=int(80 * u), fill=(96, 86, 80))
    # Neck (goes up under the head so idle motion never shows a gap).
    d.rounded_rectangle(box(-56, 280, 56, 560), radius=int(30 * u), fill=look.skin)
    # Torso with rounded shoulders.
    shirt = look.shirt
    d.rounded_rectangle(box(-370, 540, 370, 1300), radius=int(150 * u), fill=shirt)
    # Collar opening.
    d.polygon(
        [box(-70, 530, 0, 0)[:2], box(70, 530, 0, 0)[:2], box(0, 630, 0, 0)[:2]], fill=look.skin
    )
    if look.jacket is not None:
        jac = look.jacket
        d.rounded_rectangle(box(-370, 540, -60, 1300), radius=int(150 * u), fill=jac)
        d.rounded_rectangle(box(60, 540, 370, 1300), radius=int(150 * u), fill=jac)
        d.rectangle(box(-200, 700, -60, 1300), fill=jac)
        d.rectangle(box(60, 700, 200, 1300), fill=jac)
        lapel = _darker(jac, 0.8)
        d.polygon(
            [box(-95, 545, 0, 0)[:2], box(-10, 760, 0, 0)[:2], box(-150, 640, 0, 0)[:2]], fill=lapel
        )
        d.polygon(
            [box(95, 545, 0, 0)[:2], box(10, 760, 0, 0)[:2], box(150, 640, 0, 0)[:2]], fill=lapel
        )
    if look.tie:
        d.polygon(
            [
                box(-22, 628, 0, 0)[:2],
                box(22, 628, 0, 0)[:2],
                box(34, 800, 0, 0)[:2],
                box(0, 850, 0, 0)[:2],
                box(-34, 800, 0, 0)[:2],
            ],
            fill=look.accent,
        )
        d.polygon(
            [box(-26, 600, 0, 0)[:2], box(26, 600, 0, 0)[:2], box(0, 640, 0, 0)[:2]],
            fill=_darker(look.accent),
        )
    else:
        d.arc(box(-80, 520, 80, 660), start=20, end=160, fill=look.accent, width=max(2, int(6 * u)))
        d.ellipse(box(-10, 650, 10, 672), fill=look.accent)
    out = img.resize((w, h), Image.Resampling.LANCZOS)
    return out


def _draw_head(look: Look, g: _Geom, viseme: str, closed: bool) -> Image.Image:
    hw, hh = g.head_size
    s = _SS
    img = Image.new("RGBA", (hw * s, hh * s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    u = g.u * s
    fx = hw * s / 2  # face centre
    fy = 290 * u
    rx, ry = 150 * u, 190 * u

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        return int(fx + x0 * u), int(fy + y0 * u), int(fx + x1 * u), int(fy + y1 * u)

    hair, style = look.hair, look.hair_style
    _draw_back_hair(d, box, look, u)
    # Ears.
    skin = look.skin
    d.ellipse(box(-172, -30, -128, 50), fill=_darker(skin, 0.92))
    d.ellipse(box(128, -30, 172, 50), fill=_darker(skin, 0.92))
    # Face.
    d.ellipse((int(fx - rx), int(fy - ry), int(fx + rx), int(fy + ry)), fill=skin)
    # Beard.
    if look.beard:
        d.chord(box(-150, -60, 150, 190), start=10, end=170, fill=hair)
        d.ellipse(box(-70, 60, 70, 135), fill=skin)  # keep the mouth area clear
    # Front hair.
    if style in ("long", "bob", "short", "bun"):
        d.chord(box(-158, -205, 158, 10), start=180, end=360, fill=hair)
        d.ellipse(box(-150, -175, 20, -45), fill=hair)
    elif style == "buzz":
        d.chord(box(-152, -196, 152, -20), start=180, end=360, fill=_mix(hair, skin, 0.25))
    elif style == "curly":
        for i in range(7):
            x = -120 + i * 40
            d.ellipse(box(x - 40, -210, x + 40, -130), fill=hair)
    # Cheeks.
    blush = (*_mix(skin, (230, 120, 120), 0.35), 255)
    d.ellipse(box(-115, 40, -65, 80), fill=blush)
    d.ellipse(box(65, 40, 115, 80), fill=blush)
    # Eyebrows.
    brow = _darker(hair, 0.8) if style != "buzz" else _darker(hair, 0.9)
    bw = max(2, int(9 * u))
    d.line([box(-95, -62, 0, 0)[:2], box(-35, -70, 0, 0)[:2]], fill=brow, width=bw)
    d.line([box(35, -70, 0, 0)[:2], box(95, -62, 0, 0)[:2]], fill=brow, width=bw)
    _draw_eyes(d, box, look, closed, u)
    # Nose.
    d.arc(
        box(-18, 10, 18, 52), start=20, end=160, fill=_darker(skin, 0.78), width=max(2, int(5 * u))
    )
    _draw_mouth(d, look, viseme, fx, fy + 98 * u, u)
    return img.resize((hw, hh), Image.Resampling.LANCZOS)


_Box = Callable[[float, float, float, float], tuple[int, int, int, int]]


def _draw_back_hair(d: ImageDraw.ImageDraw, box: _Box, look: Look, u: float) -> None:
    """The hair behind the face (long, bob, curly or a bun)."""
    hair, style = look.hair, look.hair_style
    if style == "long":
        d.rounded_rectangle(box(-185, -150, 185, 150), radius=int(120 * u), fill=hair)
        d.rounded_rectangle(box(-188, 0, -100, 262), radius=int(40 * u), fill=hair)
        d.rounded_rectangle(box(100, 0, 188, 262), radius=int(40 * u), fill=hair)
    elif style == "bob":
        d.rounded_rectangle(box(-180, -170, 180, 140), radius=int(110 * u), fill=hair)
    elif style == "curly":
        for i in range(14):
            a = math.pi * (0.85 + 1.3 * i / 13)
            x, y = 175 * math.cos(a), 175 * math.sin(a) - 10
            d.ellipse(box(x - 62, y - 62, x + 62, y + 62), fill=hair)
        d.ellipse(box(-190, -230, 190, 120), fill=hair)
    elif style == "bun":
        d.ellipse(box(-70, -290, 70, -160), fill=hair)


def _draw_eyes(d: ImageDraw.ImageDraw, box: _Box, look: Look, closed: bool, u: float) -> None:
    """Eyes (open or closed) and, when the look has them, glasses."""
    hair = look.hair
    # Eyes.
    for sx in (-1, 1):
        ex = 62 * sx
        if closed:
            d.arc(
                box(ex - 30, -40, ex + 30, 0),
                start=10,
                end=170,
                fill=_darker(hair, 0.6),
                width=max(2, int(5 * u)),
            )
        else:
            d.ellipse(box(ex - 30, -38, ex + 30, 2), fill=(252, 252, 252))
            d.ellipse(box(ex - 15, -33, ex + 15, -3), fill=look.eyes)
            d.ellipse(box(ex - 7, -25, ex + 7, -11), fill=(20, 20, 24))
            d.ellipse(box(ex + 2, -28, ex + 8, -22), fill=(255, 255, 255))
            d.arc(
                box(ex - 31, -40, ex + 31, 4),
                start=195,
                end=345,
                fill=_darker(hair, 0.6),
                width=max(2, int(4 * u)),
            )
    # Glasses.
    if look.glasses:
        gw = max(2, int(5 * u))
        frame = (40, 40, 48)
        d.rounded_rectangle(box(-110, -50, -18, 18), radius=int(18 * u), outline=frame, width=gw)
        d.rounded_rectangle(box(18, -50, 110, 18), radius=int(18 * u), outline=frame, width=gw)
        d.line([box(-18, -22, 0, 0)[:2], box(18, -22, 0, 0)[:2]], fill=frame, width=gw)


def _draw_mouth(
    d: ImageDraw.ImageDraw, look: Look, viseme: str, mx: float, my: float, u: float
) -> None:
    lips = look.lips
    dark = (70, 22, 30)
    teeth = (248, 248, 244)
    tongue = (200, 90, 100)
    lw = max(2, int(7 * u))

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        return int(mx + x0 * u), int(my + y0 * u), int(mx + x1 * u), int(my + y1 * u)

    if viseme == "rest":
        d.arc(box(-48, -22, 48, 12), start=20, end=160, fill=lips, width=lw)
    elif viseme == "mbp":
        d.rounded_rectangle(box(-42, -8, 42, 8), radius=int(8 * u), fill=lips)
        d.line(
            [box(-40, 0, 0, 0)[:2], box(40, 0, 0, 0)[:2]],
            fill=_darker(lips, 0.7),
            width=max(1, int(3 * u)),
        )
    elif viseme == "small":
        d.ellipse(box(-40, -12, 40, 16), fill=lips)
        d.ellipse(box(-32, -6, 32, 10), fill=dark)
        d.rectangle(box(-26, -6, 26, -1), fill=teeth)
    elif viseme == "wide":
        d.ellipse(box(-52, -22, 52, 46), fill=lips)
        d.ellipse(box(-43, -14, 43, 37), fill=dark)
        d.chord(box(-43, -14, 43, 8), start=180, end=360, fill=teeth)
        d.ellipse(box(-26, 16, 26, 38), fill=tongue)
    elif viseme == "round":
        d.ellipse(box(-28, -20, 28, 30), fill=lips)
        d.ellipse(box(-17, -10, 17, 20), fill=dark)
    elif viseme == "fv":
        d.ellipse(box(-44, -10, 44, 18), fill=lips)
        d.rectangle(box(-34, -8, 34, 4), fill=dark)
        d.rectangle(box(-30, -8, 30, 1), fill=teeth)
    else:  # pragma: no cover - VISEMES is closed
        raise ValueError(viseme)
