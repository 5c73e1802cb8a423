"""Script files -> validated :class:`Script` models -> one SSML document per scene.

Public surface::

    load_script(path) -> Script            one YAML script file
    load_bulk(csv, template) -> [Script]   one script per CSV row
    render_script_ssml(script) -> [str]    one SSML document per scene
    render_scene_ssml(script, i) -> str
    plain_text(scene) -> str               the words, for PlainText inputs
    script_hash(script) -> str             sha256 for change detection
"""

from avatarpipe.scripts.loader import load_bulk, load_script
from avatarpipe.scripts.model import (
    AvatarSpec,
    CropSpec,
    Point,
    PostSpec,
    Scene,
    Script,
    VideoSpec,
    VoiceSpec,
)
from avatarpipe.scripts.ssml import plain_text, render_scene_ssml, render_script_ssml, script_hash

__all__ = [
    "AvatarSpec",
    "CropSpec",
    "Point",
    "PostSpec",
    "Scene",
    "Script",
    "VideoSpec",
    "VoiceSpec",
    "load_bulk",
    "load_script",
    "plain_text",
    "render_scene_ssml",
    "render_script_ssml",
    "script_hash",
]
