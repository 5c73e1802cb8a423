"""The `avatarpipe` command: exit codes, one-line errors, and the demo path end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avatarpipe.cli import app
from avatarpipe.media.ffmpeg import probe

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "templates" / "scripts"
runner = CliRunner()


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, output
    assert "Traceback" not in output
    return errors[0]


def _panel(output: str, title: str) -> list[str]:
    """The rows of one boxed section of Typer's help (``Commands``, ``Options``...)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if f"─ {title} ─" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("╰"))
    return [line.strip("│ ").rstrip("│").rstrip() for line in lines[start + 1 : end]]


def _help(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_help_teaches_the_commands() -> None:
    rows = _panel(_help(), "Commands")
    summaries = dict(row.split(None, 1) for row in rows if row)
    # Every command is listed once, each with the first line of its own help.
    assert set(summaries) == {
        "validate", "presets", "run", "serve", "emulator",
        # operating the resource
        "avatars", "voices", "teardown", "doctor", "estimate", "status", "jobs",
        # the local stack (make up / make stack / make down)
        "stack",
    }  # fmt: skip
    assert summaries["validate"].startswith("Check a script without calling any service")
    assert summaries["presets"].startswith("List the post-processing presets")
    assert summaries["run"].startswith("Render a script into finished video(s)")
    assert summaries["serve"].startswith("Serve the nightly and ad-hoc deployments")
    assert summaries["emulator"].startswith("Run the local Speech service emulator")
    assert summaries["stack"].startswith("The local stack: `make up`, `make stack`")
    assert summaries["avatars"].startswith("List, deploy, remove and check the custom avatars")
    assert summaries["voices"].startswith("List, check, suspend and resume the custom voice")
    assert summaries["teardown"].startswith("Stop idle hosting")
    assert summaries["doctor"].startswith("Check the setup")
    assert summaries["estimate"].startswith("Estimate what a run would submit and cost")
    assert summaries["status"].startswith("Show the recent runs and their jobs")
    assert summaries["jobs"].startswith("List, show, cancel, delete and prune")


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (
            ["run"],
            {
                "--out",
                "--backend",
                "--csv",
                "--poll",
                "--teardown",
                "--post",
                "--no-post",
                "--delete-jobs",
                "--dry-run",
            },
        ),
        (["estimate"], {"--csv", "--out", "--json", "--delete-jobs"}),
        (["status"], {"--out", "--limit", "--json"}),
        (["jobs", "list"], {"--out", "--json"}),
        (["jobs", "delete"], {"--force", "--json"}),
        (["jobs", "prune"], {"--older-than", "--force", "--json"}),
        (["validate"], {"--csv"}),
        (["serve"], {"--scripts", "--cron", "--timezone", "--limit", "--adhoc-limit"}),
        (["emulator", "serve"], {"--port", "--state", "--seed", "--renderer", "--time-scale"}),
        (["avatars", "check"], {"--yes", "--voice", "--deployment-id"}),
        (["voices", "check"], {"--name"}),
        (["teardown"], {"--voice", "--avatar"}),
        (["doctor"], {"--probe"}),
    ],
)
def test_help_lists_each_commands_key_options(command: list[str], options: set[str]) -> None:
    listed = {
        word
        for row in _panel(_help(*command), "Options")
        for word in row.split()
        if word.startswith("--")
    }
    assert options <= listed, sorted(options - listed)


@pytest.mark.parametrize("name", ["product-update.yaml", "training-lesson.yaml"])
def test_validate_accepts_the_examples(name: str) -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLES / name)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")


def test_validate_accepts_a_bulk_csv() -> None:
    result = runner.invoke(
        app,
        [
            "validate",
            str(EXAMPLES / "greeting-template.yaml"),
            "--csv",
            str(EXAMPLES / "greetings.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("ok: ") >= 3


def test_an_invalid_script_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "title: x\navatar: {character: lisa, style: casual-sitting}\nvoice: {name: en-US-AvaNeural}\nscenes:\n  - text: ''\n"
    )
    for command in (["validate", str(bad)], ["run", str(bad), "--out", str(tmp_path / "out")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        line = _one_error_line(result.output)
        assert "bad.yaml" in line and "scenes[0].text" in line
    assert not (tmp_path / "out").exists(), "nothing is written for an invalid script"


def test_a_bad_setting_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AVATARPIPE_SPEECH_ENDPOINT", "ftp://example.com")
    result = runner.invoke(
        app, ["run", str(EXAMPLES / "product-update.yaml"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "AVATARPIPE_SPEECH_ENDPOINT" in _one_error_line(result.output)


def test_azure_without_a_key_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(
        "AVATARPIPE_SPEECH_ENDPOINT", "https://westeurope.api.cognitive.microsoft.com"
    )
    result = runner.invoke(
        app, ["run", str(EXAMPLES / "product-update.yaml"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "AVATARPIPE_SPEECH_KEY" in _one_error_line(result.output)


def test_an_unknown_backend_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(EXAMPLES / "product-update.yaml"), "--backend", "gcp"])
    assert result.exit_code == 2
    assert "--backend" in _one_error_line(result.output)


@pytest.mark.usefixtures("prefect_harness")
def test_a_wrong_key_exits_1_with_how_to_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_emu: object
) -> None:
    emu = make_emu(key="the-right-key")  # type: ignore[operator]
    monkeypatch.setenv("AVATARPIPE_SPEECH_ENDPOINT", emu.url)
    monkeypatch.setenv("AVATARPIPE_BACKEND", "emulator")
    monkeypatch.setenv("AVATARPIPE_SPEECH_KEY", "a-wrong-key")
    result = runner.invoke(
        app, ["run", str(EXAMPLES / "training-lesson.yaml"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    line = _one_error_line(result.output)
    assert "401" in line and "AVATARPIPE_SPEECH_KEY" in line
    assert "a-wrong-key" not in result.output


@pytest.mark.usefixtures("prefect_harness")
def test_run_on_the_embedded_emulator_makes_the_demo_video(tmp_path: Path) -> None:
    """What `make demo` does: the product-update example, real renderer, web-1080p preset."""
    out = tmp_path / "outputs"
    result = runner.invoke(app, ["run", str(EXAMPLES / "product-update.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "embedded Speech emulator" in result.output
    videos = [
        line.split(": ", 1)[1] for line in result.output.splitlines() if line.startswith("video: ")
    ]
    assert len(videos) == 1
    video = Path(videos[0])
    manifest = json.loads((video.parent / "manifest.json").read_text())
    assert len(manifest["scenes"]) == 4
    assert all(scene["job_status"] == "Succeeded" for scene in manifest["scenes"])
    info = probe(video, exact=True)
    assert info.video is not None and info.video.codec == "h264"
    assert (info.video.width, info.video.height) == (1920, 1080)
    assert info.audio is not None
    speech_s = sum(scene["video"]["duration_ms"] for scene in manifest["scenes"]) / 1000
    assert abs(info.duration_s - speech_s) <= 0.2, (info.duration_s, speech_s)
    output = manifest["outputs"][0]
    assert abs(output["loudness"]["after"]["integrated_lufs"] - (-16.0)) <= 1.0
    assert all("/" not in name for name in output["subtitles"])
    # The run folder is final and nothing half-written is left beside it.
    assert not list(video.parent.parent.glob(".*.partial"))

    # A rerun re-attaches to every job: the same videos, nothing created or downloaded again.
    again = runner.invoke(app, ["run", str(EXAMPLES / "product-update.yaml"), "--out", str(out)])
    assert again.exit_code == 0, again.output
    rerun_video = Path(
        [
            line.split(": ", 1)[1]
            for line in again.output.splitlines()
            if line.startswith("video: ")
        ][0]
    )
    rerun = json.loads((rerun_video.parent / "manifest.json").read_text())
    assert [s["job_id"] for s in rerun["scenes"]] == [s["job_id"] for s in manifest["scenes"]]
    assert [s["video"]["sha256"] for s in rerun["scenes"]] == [
        s["video"]["sha256"] for s in manifest["scenes"]
    ]
