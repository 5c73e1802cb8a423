"""Tiny scripts for nightly/stack tests: one short scene, 320x180, ultrafast encode."""

from __future__ import annotations

from pathlib import Path

SCRIPT = """title: {title}
avatar: {{character: lisa, style: casual-sitting}}
voice: {{name: en-US-AvaMultilingualNeural}}
video: {{format: mp4, codec: h264, subtitles: external_file}}
scenes:
  - text: {text}
post: {{preset: web-720p, overrides: {{width: 320, height: 180, speed: ultrafast, contact_sheet: false}}}}
"""


def write_script(folder: Path, name: str, title: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(SCRIPT.format(title=title, text=text), encoding="utf-8")
    return path
