"""Operating the resource: `avatarpipe avatars`, `voices`, `teardown` and `doctor`, and the
embedded emulator's declared resource (a misspelt avatar or voice fails before any job).

Real `avatarpipe` processes against a standalone emulator (`avatarpipe emulator serve`, holding
the default resource file, with a key) for each command's main behaviour; the error variants run
in-process (typer's CliRunner) against the same live emulator. Outcomes are read from the
emulator (its admin API, its custom voice API, its counters), never from our own logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from emu_fixtures import ServedEmulator
from flow_emu import Emu, cnv_seed
from typer.testing import CliRunner

from avatarpipe.cli import app
from avatarpipe.cli.seed import DEFAULT_RESOURCE, embedded_emulator
from avatarpipe.emulator.config import EmulatorConfig
from avatarpipe.emulator.server import EmulatorServer
from avatarpipe.resource.avatars import ensure_emulator_avatar
from avatarpipe.settings import load_settings
from avatarpipe.speech.emulator_admin import EmulatorAdminClient

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "templates" / "scripts"
BIN = Path(sys.executable).parent / "avatarpipe"
VOICE = "9f50c644-2121-40e9-9ea7-544e48bfe3cb"
AVATAR = "contoso-presenter"
VOICE_NAME = "ContosoPresenterNeural"
STRAY = "0b3d1f6e-57a2-4c55-9d4a-2b9a3c1e7f00"
runner = CliRunner()


def _env(emu_url: str | None, key: str | None, out: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AVATARPIPE_", "PREFECT_API_URL"))
    }
    env["AVATARPIPE_OUTPUT_DIR"] = str(out)
    if emu_url:
        env.update(AVATARPIPE_SPEECH_ENDPOINT=emu_url, AVATARPIPE_BACKEND="emulator")
    if key:
        env["AVATARPIPE_SPEECH_KEY"] = key
    env.update(extra)
    return env


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _invoke(args: list[str], env: dict[str, str]) -> Any:
    """In-process, with exactly ``env``'s avatarpipe settings (the others unset)."""
    unset = {k: None for k in os.environ if k.startswith("AVATARPIPE_") and k not in env}
    return runner.invoke(app, args, env={**unset, **env})


def _one_error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert "Traceback" not in output
    return errors[0]


def _endpoint(emu_url: str, key: str) -> dict[str, Any]:
    """The custom voice endpoint as the service's own API shows it."""
    resp = httpx.get(
        f"{emu_url}/customvoice/endpoints/{VOICE}",
        params={"api-version": "2026-01-01"},
        headers={"Ocp-Apim-Subscription-Key": key},
        timeout=10,
    )
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    return body


def _wait_voice(emu_url: str, key: str, status: str) -> None:
    for _ in range(100):
        if _endpoint(emu_url, key)["status"] == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"endpoint never became {status}: {_endpoint(emu_url, key)}")


def _deployment(admin: EmulatorAdminClient) -> str | None:
    avatar = admin.get_avatar(AVATAR)
    assert avatar is not None
    return (avatar.get("deployment") or {}).get("status")


# ------------------------------------------------------------------ avatars


def test_avatars_deploy_list_remove(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    emu = served_emulator
    env = _env(emu.url, emu.key, tmp_path)
    deployed = _cli(["avatars", "deploy", AVATAR], env)
    assert deployed.returncode == 0, deployed.stderr
    assert f"deployed {AVATAR}" in deployed.stdout
    assert _deployment(emu.admin) == "Succeeded"

    listed = _invoke(["avatars", "list"], env)
    assert listed.exit_code == 0, listed.output
    assert [line.split()[:2] for line in listed.output.splitlines()] == [[AVATAR, "Succeeded"]]

    removed = _invoke(["avatars", "remove", AVATAR], env)
    assert removed.exit_code == 0, removed.output
    assert "no longer billed" in removed.output
    assert _deployment(emu.admin) is None


def test_avatars_check_on_azure_costs_a_probe_only_with_yes(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    """On Azure (here: the emulator driven as Azure, no admin API) `check` is a paid probe job."""
    emu = served_emulator
    ensure_emulator_avatar(emu.admin, AVATAR, poll_interval_s=0.05)
    env = _env(
        emu.url, emu.key, tmp_path, AVATARPIPE_BACKEND="azure", AVATARPIPE_POLL_INTERVAL_S="0.5"
    )
    before = emu.admin.stats()["jobs_created"]
    try:
        refused = _invoke(["avatars", "check", AVATAR], env)  # no terminal, no --yes
        assert refused.exit_code == 2, refused.output
        assert "--yes" in _one_error_line(refused.output)
        assert "billed" in refused.output  # the cost is said before anything runs
        assert emu.admin.stats()["jobs_created"] == before

        probed = _cli(["avatars", "check", AVATAR, "--yes"], env)
        assert probed.returncode == 0, probed.stderr
        assert "billed" in probed.stderr and "usable" in probed.stdout
        stats = emu.admin.stats()
        assert stats["jobs_created"] == before + 1
        assert sum(stats["jobs_by_status"].values()) == 0, "the probe job is deleted afterwards"
    finally:
        emu.admin.remove_deployment(AVATAR)


def test_avatars_deploy_and_remove_on_azure_print_the_studio_steps(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    env = _env(served_emulator.url, served_emulator.key, tmp_path, AVATARPIPE_BACKEND="azure")
    for action, step in (("deploy", "Deploy model > Deploy model"), ("remove", "then Delete")):
        result = _invoke(["avatars", action, AVATAR], env)
        assert result.exit_code == 0, result.output
        assert "Speech Studio" in result.output and step in result.output
    assert _deployment(served_emulator.admin) is None  # nothing was done to the resource


# ------------------------------------------------------------------ voices


def test_voices_list_check_suspend_resume(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    emu = served_emulator
    env = _env(emu.url, emu.key, tmp_path)
    listed = _cli(["voices", "list"], env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[:3] == [VOICE, VOICE_NAME, "Succeeded"]

    checked = _invoke(["voices", "check", VOICE, "--name", VOICE_NAME], env)
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("ok: ")

    suspended = _cli(["voices", "suspend", VOICE], env)
    assert suspended.returncode == 0, suspended.stderr
    _wait_voice(emu.url, emu.key, "Disabled")

    resumed = _invoke(["voices", "resume", VOICE], env)
    assert resumed.exit_code == 0, resumed.output
    _wait_voice(emu.url, emu.key, "Succeeded")


# ------------------------------------------------------------------ errors: one line, non-zero


COMMANDS = [
    ["avatars", "list"],
    ["avatars", "check", AVATAR],
    ["avatars", "deploy", AVATAR],
    ["avatars", "remove", AVATAR],
    ["voices", "list"],
    ["voices", "check", VOICE],
    ["voices", "suspend", VOICE],
    ["voices", "resume", VOICE],
    ["teardown"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_without_an_endpoint_each_command_says_how_to_set_it(
    command: list[str], tmp_path: Path
) -> None:
    result = _invoke(command, _env(None, None, tmp_path))
    assert result.exit_code == 2, result.output
    assert "AVATARPIPE_SPEECH_ENDPOINT is not set" in _one_error_line(result.output)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_wrong_key_is_one_line_naming_the_setting(
    command: list[str], served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    wrong = "a-wrong-key-5678"
    result = _invoke(command, _env(served_emulator.url, wrong, tmp_path))
    assert result.exit_code == 1, result.output
    line = _one_error_line(result.output)
    assert "401" in line and "AVATARPIPE_SPEECH_KEY" in line
    assert wrong not in result.output and served_emulator.key not in result.output


@pytest.mark.parametrize(
    ("command", "named", "held"),
    [
        (
            ["avatars", "check", "contoso-presnter"],
            "'contoso-presnter'",
            f"did you mean '{AVATAR}'",
        ),
        (
            ["avatars", "deploy", "contoso-presnter"],
            "'contoso-presnter'",
            f"did you mean '{AVATAR}'",
        ),
        (
            ["avatars", "remove", "contoso-presnter"],
            "'contoso-presnter'",
            f"did you mean '{AVATAR}'",
        ),
        (["voices", "check", VOICE[:-1] + "c"], VOICE[:-1] + "c", f"did you mean '{VOICE}'"),
        (["voices", "suspend", VOICE[:-1] + "c"], VOICE[:-1] + "c", f"did you mean '{VOICE}'"),
        (["voices", "resume", VOICE[:-1] + "c"], VOICE[:-1] + "c", f"did you mean '{VOICE}'"),
        (
            ["voices", "check", VOICE, "--name", "ContosoPresentorNeural"],
            "ContosoPresentorNeural",
            VOICE_NAME,
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_an_unknown_id_names_what_the_resource_holds(
    command: list[str], named: str, held: str, served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    result = _invoke(command, _env(served_emulator.url, served_emulator.key, tmp_path))
    assert result.exit_code == 1, result.output
    line = _one_error_line(result.output)
    assert named in line and held in line


def test_a_malformed_endpoint_id_is_invalid_input(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    result = _invoke(
        ["voices", "suspend", "not-a-uuid"],
        _env(served_emulator.url, served_emulator.key, tmp_path),
    )
    assert result.exit_code == 2, result.output
    assert "not-a-uuid" in _one_error_line(result.output)


# ------------------------------------------------------------------ teardown


def _default_resource_emu(make_emu: Any) -> Emu:
    import yaml

    emu: Emu = make_emu()
    emu.seed(yaml.safe_load(DEFAULT_RESOURCE.read_text(encoding="utf-8")))
    return emu


def test_teardown_suspends_voices_and_removes_avatars_saying_so(
    make_emu: Any, tmp_path: Path
) -> None:
    emu = _default_resource_emu(make_emu)
    ensure_emulator_avatar(emu.admin, AVATAR, poll_interval_s=0.05)
    done = _cli(["teardown"], _env(emu.url, None, tmp_path))
    assert done.returncode == 0, done.stderr
    assert f"suspended custom voice endpoint {VOICE}" in done.stdout
    assert f"removed custom avatar deployment {AVATAR}" in done.stdout
    assert _deployment(emu.admin) is None
    assert _endpoint(emu.url, "local-emulator-key")["status"] in ("Disabling", "Disabled")

    again = _invoke(["teardown", "--voice"], _env(emu.url, None, tmp_path))
    assert again.exit_code == 0, again.output
    assert "nothing to suspend" in again.output and "avatar" not in again.output


SMALL_SCRIPT = f"""title: Teardown check
avatar: {{character: {AVATAR}, customized: true}}
voice: {{name: {VOICE_NAME}, deployment_id: {VOICE}}}
video: {{format: mp4, codec: h264, subtitles: none}}
scenes:
  - text: One short scene.
"""


@pytest.mark.usefixtures("prefect_harness")
def test_run_with_teardown_prints_what_it_stopped(make_emu: Any, tmp_path: Path) -> None:
    emu = _default_resource_emu(make_emu)
    script = tmp_path / "small.yaml"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    env = _env(emu.url, None, tmp_path / "out")
    result = _invoke(["run", str(script), "--no-post", "--poll", "0.5", "--teardown", "both"], env)
    assert result.exit_code == 0, result.output
    assert f"teardown: suspended custom voice endpoint {VOICE}" in result.output
    assert f"teardown: removed custom avatar deployment {AVATAR}" in result.output
    assert _deployment(emu.admin) is None
    assert _endpoint(emu.url, "local-emulator-key")["status"] in ("Disabling", "Disabled")


# ------------------------------------------------------------------ doctor


def test_doctor_passes_on_a_healthy_setup(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    emu = served_emulator
    jobs = emu.admin.stats()["jobs_created"]
    ran = _cli(["doctor", str(EXAMPLES / "product-update.yaml")], _env(emu.url, emu.key, tmp_path))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert all(line.split()[0] in ("ok", "skip") for line in lines), ran.stdout
    names = [line.split()[1].rstrip(":") for line in lines]
    assert names[:4] == ["endpoint", "key", "api-versions", "region"]
    assert {"voice", "avatar", "blob", "ffmpeg", "prefect", "budget"} <= set(names)
    assert f"voice {VOICE_NAME}: endpoint {VOICE}: Succeeded" in ran.stdout
    assert emu.key not in ran.stdout + ran.stderr
    assert emu.admin.stats()["jobs_created"] == jobs, "doctor only reads"


def test_doctor_fails_on_a_wrong_key_with_the_fix_and_never_prints_it(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    emu = served_emulator
    wrong = "doctor-wrong-key-9876"
    jobs = emu.admin.stats()["jobs_created"]
    ran = _cli(["doctor"], _env(emu.url, wrong, tmp_path))
    assert ran.returncode == 1, ran.stdout + ran.stderr
    failed = [line for line in ran.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL key: "), ran.stdout
    assert "401" in failed[0] and "-> set AVATARPIPE_SPEECH_KEY" in failed[0]
    assert wrong not in ran.stdout + ran.stderr and emu.key not in ran.stdout + ran.stderr
    assert emu.admin.stats()["jobs_created"] == jobs


def test_doctor_names_an_endpoint_that_does_not_answer(tmp_path: Path) -> None:
    result = _invoke(["doctor"], _env("http://127.0.0.1:9", "some-key-4321", tmp_path))
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL endpoint: http://127.0.0.1:9 does not")
    assert "-> check AVATARPIPE_SPEECH_ENDPOINT" in failed[0]
    assert "some-key-4321" not in result.output


@pytest.mark.parametrize(
    ("endpoint", "status"),
    [
        ("https://westeurope.api.cognitive.microsoft.com", "ok"),
        ("https://eastus.api.cognitive.microsoft.com", "fail"),
        ("https://contoso-avatars.cognitiveservices.azure.com", "skip"),
    ],
)
def test_doctor_knows_the_batch_avatar_regions(endpoint: str, status: str) -> None:
    from avatarpipe.resource.doctor import _region

    assert _region(load_settings(), endpoint, "azure").status == status


def test_doctor_reads_the_limit_the_runs_use() -> None:
    from avatarpipe.resource.doctor import RATE_LIMIT_NAME
    from flows.connections import SpeechTarget

    assert SpeechTarget.model_fields["rate_limit_name"].default == RATE_LIMIT_NAME


@pytest.mark.azurite
def test_doctor_checks_the_blob_container_is_writable(
    served_emulator: ServedEmulator, tmp_path: Path, azurite: Any
) -> None:
    from avatarpipe.storage.blob import BlobStore

    env = _env(
        served_emulator.url, served_emulator.key, tmp_path,
        AVATARPIPE_BLOB_CONNECTION_STRING=azurite.connection_string,
        AVATARPIPE_BLOB_CONTAINER="doctor-check",
    )  # fmt: skip
    result = _invoke(["doctor"], env)
    assert result.exit_code == 0, result.output
    assert "ok   blob: container doctor-check is writable" in result.output
    store = BlobStore.from_connection_string(azurite.connection_string, "doctor-check")
    assert store.list_names(".avatarpipe/") == [".avatarpipe/doctor-check.txt"]

    unreachable = azurite.connection_string.replace(f":{azurite.port}/", ":9/")
    down = _invoke(["doctor"], {**env, "AVATARPIPE_BLOB_CONNECTION_STRING": unreachable})
    assert down.exit_code == 1, down.output
    failed = [line for line in down.output.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL blob: container doctor-check"), failed
    assert "-> check AVATARPIPE_BLOB_CONNECTION_STRING" in failed[0]
    assert azurite.account_key not in down.output + result.output


@pytest.mark.usefixtures("prefect_harness")
def test_doctor_reads_the_request_budget_from_the_prefect_server(
    served_emulator: ServedEmulator, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    from avatarpipe.resource.doctor import RATE_LIMIT_NAME
    from flows.connections import ensure_rate_limit

    ensure_rate_limit(RATE_LIMIT_NAME, 60)  # what the first run does
    api = str(PREFECT_API_URL.value())
    env = _env(served_emulator.url, served_emulator.key, tmp_path, PREFECT_API_URL=api)
    result = _invoke(["doctor"], env)
    assert result.exit_code == 0, result.output
    assert f"ok   prefect: {api} answers" in result.output
    assert f"ok   budget: {RATE_LIMIT_NAME}: 60 requests a minute (1 slot" in result.output

    down = _invoke(["doctor"], {**env, "PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert down.exit_code == 1, down.output
    assert "FAIL prefect: http://127.0.0.1:9/api does not answer" in down.output


def test_doctor_checks_the_examples_against_the_embedded_emulators_resource(
    tmp_path: Path,
) -> None:
    """No endpoint: the embedded emulator's default resource holds what every example names."""
    examples = [str(EXAMPLES / "product-update.yaml"), str(EXAMPLES / "training-lesson.yaml")]
    result = _invoke(["doctor", *examples], _env(None, None, tmp_path))
    assert result.exit_code == 0, result.output
    assert "embedded emulator" in result.output and "resource.default.yaml" in result.output
    assert f"avatar {AVATAR}: exists" in result.output


# ------------------------------------------------------------------ the embedded emulator


DEMO = (EXAMPLES / "product-update.yaml").read_text(encoding="utf-8")


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    ("original", "misspelt", "held"),
    [
        (f"character: {AVATAR}", "character: contoso-presentr", AVATAR),
        (f"name: {VOICE_NAME}", "name: ContosoPresentorNeural", VOICE_NAME),
        (f"deployment_id: {VOICE}", f"deployment_id: {VOICE[:-1]}c", VOICE),
    ],
    ids=["avatar", "voice-name", "deployment-id"],
)
def test_a_misspelling_fails_the_embedded_run_before_any_job(
    original: str, misspelt: str, held: str, tmp_path: Path
) -> None:
    script = tmp_path / "misspelt.yaml"
    script.write_text(DEMO.replace(original, misspelt), encoding="utf-8")
    state = tmp_path / "emulator-state"
    env = _env(
        None, None, tmp_path / "out",
        AVATARPIPE_EMULATOR_STATE=str(state), AVATARPIPE_EMULATOR_TIME_SCALE="0",
    )  # fmt: skip
    result = _invoke(["run", str(script), "--no-post"], env)
    assert result.exit_code == 1, result.output
    line = _one_error_line(result.output)
    assert misspelt.split(": ", 1)[1] in line and held in line, line
    # The resource the run used holds no job at all.
    with EmulatorServer(EmulatorConfig(port=0, state_dir=state, time_scale=0)) as server:
        admin = EmulatorAdminClient(server.url, key="local-emulator-key")
        try:
            assert admin.stats()["jobs_created"] == 0
        finally:
            admin.close()


def test_the_embedded_emulator_holds_exactly_its_resource_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an older state folder holds (here: a misspelt avatar and voice) does not survive."""
    state = tmp_path / "state"
    with EmulatorServer(EmulatorConfig(port=0, state_dir=state, time_scale=0)) as old:
        stray = EmulatorAdminClient(old.url, key="local-emulator-key")
        stray.seed({"avatars": [{"name": "contoso-presentr"}], **cnv_seed("StrayNeural", STRAY)})
        stray.close()
    monkeypatch.setenv("AVATARPIPE_EMULATOR_STATE", str(state))
    with embedded_emulator(load_settings(output_dir=tmp_path)) as url:
        admin = EmulatorAdminClient(url, key="local-emulator-key")
        try:
            assert [a["name"] for a in admin.list_avatars()] == [AVATAR]
        finally:
            admin.close()
        ids = [
            e["id"]
            for e in httpx.get(
                f"{url}/customvoice/endpoints",
                params={"api-version": "2026-01-01"},
                headers={"Ocp-Apim-Subscription-Key": "local-emulator-key"},
                timeout=10,
            ).json()["value"]
        ]
        assert ids == [VOICE]
