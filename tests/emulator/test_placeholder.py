"""The placeholder renderer makes real files of the requested kind, checked by probing."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from avatarpipe.emulator.app import load_renderer
from avatarpipe.emulator.cli import app as cli_app
from avatarpipe.emulator.config import EmulatorConfig
from avatarpipe.emulator.placeholder import PlaceholderRenderer, estimate_duration_s
from avatarpipe.emulator.rendering import RenderSpec
from avatarpipe.media.ffmpeg import probe


@pytest.mark.parametrize(
    ("fmt", "codec", "color", "alpha"),
    [
        ("mp4", "h264", "#FFFFFFFF", False),
        ("mp4", "hevc", "#336699FF", False),
        ("webm", "vp9", "#00000000", True),
        ("webm", "av1", "#FFFFFFFF", False),
    ],
)
def test_formats(tmp_path: Path, fmt: str, codec: str, color: str, alpha: bool) -> None:
    spec = RenderSpec(
        content="Three small words.",
        video_format=fmt,
        video_codec=codec,  # type: ignore[arg-type]
        background_color=color,
        bitrate_kbps=300,
    )
    out = PlaceholderRenderer((192, 108)).render(spec, tmp_path, "0001")
    assert out.video == tmp_path / f"0001.{fmt}" and out.video.stat().st_size == out.size_bytes
    assert out.duration_ms == 1050 and out.characters == len("Three small words.")
    info = probe(out.video, exact=True)
    assert info.video is not None and info.video.codec == codec
    assert (info.video.width, info.video.height) == (192, 108)
    assert info.video.alpha is alpha
    assert info.audio is not None
    assert abs(info.duration_s - 1.05) < 0.15
    assert not list(tmp_path.glob(".*"))


def test_service_frame_size_and_crop(tmp_path: Path) -> None:
    spec = RenderSpec(content="Hi.", video_codec="h264", video_crop=(100, 100, 740, 460))
    info = probe(PlaceholderRenderer().render(spec, tmp_path, "0001").video)
    assert info.video is not None and (info.video.width, info.video.height) == (640, 360)


def test_duration_model() -> None:
    assert estimate_duration_s(RenderSpec(content="Hi")) == 1.0
    ssml = "<speak><voice name='x'>one two three four five</voice></speak>"
    assert estimate_duration_s(RenderSpec(content=ssml, input_kind="SSML")) == 1.75


def test_renderer_choice(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from avatarpipe.emulator.render import AvatarRenderer

    assert isinstance(load_renderer(EmulatorConfig(renderer="placeholder")), PlaceholderRenderer)
    with caplog.at_level(logging.WARNING, logger="avatarpipe.emulator"):
        real = load_renderer(EmulatorConfig(renderer="real"))
    assert isinstance(real, AvatarRenderer) and not isinstance(real, PlaceholderRenderer)
    assert "placeholder" not in caplog.text
    # Only when the real renderer cannot be imported does the placeholder stand in, with a warning.
    real_import = importlib.import_module

    def broken(name: str, *args: Any) -> Any:
        if name == "avatarpipe.emulator.render":
            raise ImportError("no espeak-ng here")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", broken)
    with caplog.at_level(logging.WARNING, logger="avatarpipe.emulator"):
        fallback = load_renderer(EmulatorConfig(renderer="real"))
    assert isinstance(fallback, PlaceholderRenderer)
    assert "real renderer unavailable (no espeak-ng here)" in caplog.text


def test_cli_help() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--state", "--seed", "--time-scale", "--key"):
        assert option in result.output
