"""Operating the resource: estimate, run --dry-run, the cost limit, status and jobs.

Real `avatarpipe` processes against a standalone emulator process (`avatarpipe emulator serve`,
real renderer); error variants run in-process with typer's CliRunner against the same emulator.
Behaviour is checked with the emulator's counters.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from avatarpipe.cli import app
from avatarpipe.cli.seed import DEFAULT_RESOURCE
from avatarpipe.speech.emulator_admin import EmulatorAdminClient

REPO = Path(__file__).resolve().parents[2]
EX = REPO / "templates" / "scripts"
KEY = "operate-test-key"
EXAMPLES: dict[str, list[str]] = {
    "product-update": [str(EX / "product-update.yaml")],
    "training-lesson": [str(EX / "training-lesson.yaml")],
    "greetings": [str(EX / "greeting-template.yaml"), "--csv", str(EX / "greetings.csv")],
}
runner = CliRunner()
AVATARPIPE = str(Path(sys.executable).with_name("avatarpipe"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """A standalone emulator process and the environment that points the CLI at it."""

    def __init__(self, tmp: Path, prefect_url: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = tmp / "outputs"
        self.env = {
            **os.environ,
            "AVATARPIPE_SPEECH_ENDPOINT": self.url,
            "AVATARPIPE_BACKEND": "emulator",
            "AVATARPIPE_SPEECH_KEY": KEY,
            "AVATARPIPE_OUTPUT_DIR": str(self.out),
            "PREFECT_API_URL": prefect_url,
            "COLUMNS": "200",
        }
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [
                AVATARPIPE,
                "emulator",
                "serve",
                "--port",
                str(self.port),
                "--state",
                str(tmp / "emu"),
                "--time-scale",
                "0",
                "--key",
                KEY,
                "--seed",
                str(DEFAULT_RESOURCE),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.admin = EmulatorAdminClient(self.url, key=KEY)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.admin.stats()
                break
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.2)

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `avatarpipe ARGS` as a real process."""
        return subprocess.run(  # noqa: S603 - fixed argv
            [AVATARPIPE, *args],
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=600,
        )

    def invoke(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """Run `avatarpipe ARGS` in this process (typer's CliRunner), against the same emulator."""
        mine = {k: v for k, v in self.env.items() if k.startswith("AVATARPIPE_")}
        return runner.invoke(app, list(args), env={**mine, **(env or {})})

    def jobs(self) -> dict[str, dict[str, Any]]:
        """The service's jobs by id (`jobs list --json`, in process)."""
        done = self.invoke("jobs", "list", "--json")
        assert done.exit_code == 0, done.output
        return {j["job_id"]: j for j in json.loads(done.stdout)}

    def puts(self) -> int:
        routes = self.admin.stats()["requests_by_route"]
        return sum(
            sum(v for code, v in by_status.items() if code != "dropped")
            for route, by_status in routes.items()
            if route.startswith("PUT /avatar/")
        )

    def close(self) -> None:
        self.admin.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Service]:
    from prefect.settings import PREFECT_API_URL

    svc = Service(tmp_path_factory.mktemp("operate"), str(PREFECT_API_URL.value()))
    yield svc
    svc.close()


@pytest.fixture
def live(service: Service, monkeypatch: pytest.MonkeyPatch) -> Service:
    """The emulator's settings in this process too (for CliRunner variants)."""
    for name in ("AVATARPIPE_SPEECH_ENDPOINT", "AVATARPIPE_BACKEND", "AVATARPIPE_SPEECH_KEY"):
        monkeypatch.setenv(name, service.env[name])
    monkeypatch.setenv("AVATARPIPE_OUTPUT_DIR", str(service.out))
    return service


def _one_error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert "Traceback" not in output
    return errors[0]


def test_estimate_dry_run_and_cost_limit_submit_nothing(service: Service) -> None:
    before = service.admin.stats()["jobs_created"]
    est = service.cli(
        "estimate",
        *EXAMPLES["product-update"],
        "--json",
        env={"AVATARPIPE_REQUESTS_PER_MINUTE": "60"},
    )
    assert est.returncode == 0, est.stderr
    data = json.loads(est.stdout)
    assert data["to_submit"] == 4 and data["stored"] == 0
    assert data["cost_usd"] == pytest.approx(data["billed_s"] / 60 * 0.60, abs=0.01)
    # The budget is read through the settings: 2 a minute makes the same requests 30x slower.
    slow = json.loads(
        service.invoke(
            "estimate",
            *EXAMPLES["product-update"],
            "--json",
            env={"AVATARPIPE_REQUESTS_PER_MINUTE": "2"},
        ).stdout
    )
    assert slow["budget_wall_s"] == pytest.approx(data["budget_wall_s"] * 30, rel=0.01)

    dry = service.cli("run", *EXAMPLES["product-update"], "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert all(job["job_id"] in dry.stdout for job in data["jobs"]), "the run plans the same ids"
    assert "nothing was submitted" in dry.stderr

    refused = service.cli(
        "run", *EXAMPLES["product-update"], env={"AVATARPIPE_MAX_COST_PER_RUN": "0.01"}
    )
    assert refused.returncode == 2, refused.stderr
    line = _one_error_line(refused.stdout + refused.stderr)
    assert "AVATARPIPE_MAX_COST_PER_RUN" in line and "$0.01" in line
    stats = service.admin.stats()
    assert stats["jobs_created"] == before and service.puts() == 0


def test_estimates_are_within_20_percent_of_what_the_emulator_bills(service: Service) -> None:
    """Each example, rendered by the emulator's speech engine: estimate against billing."""
    figures = {}
    for name, args in EXAMPLES.items():
        est = json.loads(service.invoke("estimate", *args, "--json").stdout)
        done = service.invoke("run", *args, "--no-post")
        assert done.exit_code == 0, done.output
        assert "billed: " in done.stdout  # billed against estimated after the run
        jobs = service.jobs()
        billed = sum(jobs[j["job_id"]]["billed_s"] for j in est["jobs"])
        figures[name] = (est["billed_s"], billed)
        assert abs(est["billed_s"] - billed) <= 0.2 * billed, (name, est["billed_s"], billed)
        manifests = [
            json.loads(Path(line.split(": ", 1)[1]).read_text())["billing"]
            for line in done.stdout.splitlines()
            if line.startswith("manifest: ")
        ]  # one per script (per CSV row)
        estimated = sum(m["estimated_seconds"] for m in manifests)
        assert estimated == pytest.approx(est["billed_s"], abs=0.1)
        assert sum(m["avatar_seconds"] for m in manifests) == billed
        for m in manifests:
            assert m["cost_usd"] == pytest.approx(m["avatar_seconds"] / 60 * 0.6, abs=1e-3)
    print("estimated vs billed seconds:", figures)
    # Rerun: every job is in the result store now, the estimate prices nothing.
    again = json.loads(service.invoke("estimate", *EXAMPLES["product-update"], "--json").stdout)
    assert again["to_submit"] == 0 and again["stored"] == 4 and again["cost_usd"] == 0


def test_status_shows_the_runs_and_their_jobs(service: Service) -> None:
    done = service.invoke("status", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["endpoint"] == service.url
    runs = {r["slug"]: r for r in report["runs"]}
    assert {"contoso-product-update", "safety-basics-01"} <= set(runs)
    jobs = runs["contoso-product-update"]["jobs"]
    assert len(jobs) == 4 and all(j["status"] == "Succeeded" and j["billed_s"] for j in jobs)
    assert all(j["stored"] for j in jobs)
    assert report["in_flight"] == [] and report["failed"] == []
    text = service.cli("status")
    assert text.returncode == 0, text.stderr
    assert "contoso-product-update/" in text.stdout and "0 in flight, 0 failed" in text.stdout


def _put_job(service: Service, job_id: str) -> None:
    body = {
        "inputKind": "PlainText",
        "inputs": [{"content": "Hello there."}],
        "synthesisConfig": {"voice": "en-US-AvaNeural"},
        "avatarConfig": {
            "talkingAvatarCharacter": "lisa",
            "talkingAvatarStyle": "casual-sitting",
            "videoCrop": {"topLeft": {"x": 0, "y": 0}, "bottomRight": {"x": 320, "y": 180}},
        },
    }
    response = httpx.put(
        f"{service.url}/avatar/batchsyntheses/{job_id}",
        params={"api-version": "2024-08-01"},
        headers={"Ocp-Apim-Subscription-Key": KEY},
        json=body,
    )
    assert response.status_code == 201, response.text


def test_jobs_cancel_delete_and_prune_keep_what_is_not_stored(service: Service) -> None:
    # A job that stays queued: cancel deletes it.
    service.admin.configure(time_scale=1.0, queue_delay_s=3600)
    _put_job(service, "ops-queued-1")
    shown = service.invoke("jobs", "show", "ops-queued-1")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["status"] == "NotStarted"
    cancelled = service.cli("jobs", "cancel", "ops-queued-1")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled: ops-queued-1" in cancelled.stdout
    assert "ops-queued-1" not in service.jobs()
    service.admin.configure(time_scale=0.0)
    _put_job(service, "ops-other-1")  # made elsewhere: never downloaded here
    deadline = time.monotonic() + 120
    while service.jobs()["ops-other-1"]["status"] != "Succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    again = service.invoke("jobs", "cancel", "ops-other-1")
    assert again.exit_code == 2 and "nothing to cancel" in _one_error_line(again.output)

    # delete keeps a succeeded job whose videos are not stored here, unless --force.
    kept = service.cli("jobs", "delete", "ops-other-1")
    assert kept.returncode == 0, kept.stderr
    assert "kept: ops-other-1" in kept.stdout and "--force" in kept.stdout
    assert "ops-other-1" in service.jobs()

    # prune deletes the stored jobs and keeps the other one, saying why.
    stored = set(service.jobs()) - {"ops-other-1"}
    pruned = service.cli("jobs", "prune", "--older-than", "0s", "--json")
    assert pruned.returncode == 0, pruned.stderr
    actions = {a["job_id"]: a for a in json.loads(pruned.stdout)}
    assert actions["ops-other-1"]["action"] == "kept"
    assert {j for j, a in actions.items() if a["action"] == "deleted"} == stored
    assert all(actions[j]["reason"] == "videos in the result store" for j in stored)
    assert set(service.jobs()) == {"ops-other-1"}
    forced = service.invoke("jobs", "delete", "ops-other-1", "--force")
    assert forced.exit_code == 0 and "deleted: ops-other-1" in forced.stdout
    assert service.jobs() == {}


@pytest.mark.parametrize(
    ("args", "env", "code", "words"),
    [
        (["jobs", "show", "ap-no-such-job"], {}, 1, ["404"]),
        (["jobs", "cancel", "ap-no-such-job"], {}, 1, ["404"]),
        (
            ["jobs", "list"],
            {"AVATARPIPE_SPEECH_KEY": "a-wrong-key"},
            1,
            ["401", "AVATARPIPE_SPEECH_KEY"],
        ),
        (["status"], {"AVATARPIPE_SPEECH_KEY": "a-wrong-key"}, 1, ["401"]),
        (["jobs", "prune", "--older-than", "soon"], {}, 2, ["--older-than"]),
        (["estimate", str(EX / "missing.yaml")], {}, 2, ["missing.yaml"]),
    ],
)
def test_errors_are_one_line_and_non_zero(
    live: Service,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    code: int,
    words: list[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    line = _one_error_line(result.output)
    assert all(w in line for w in words), line
    assert "a-wrong-key" not in result.output


def test_an_unreachable_endpoint_is_one_line(service: Service) -> None:
    down = f"http://127.0.0.1:{_free_port()}"
    done = service.cli("jobs", "list", env={"AVATARPIPE_SPEECH_ENDPOINT": down})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{down} could not be reached" in _one_error_line(done.stdout + done.stderr)
    status = service.invoke("status", env={"AVATARPIPE_SPEECH_ENDPOINT": down})
    assert status.exit_code == 1 and down in _one_error_line(status.output)


def test_a_deployment_run_is_refused_above_the_cost_limit_too(
    live: Service, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The flow itself checks the limit (deployments do not pass through the CLI)."""
    from avatarpipe.errors import ConfigError
    from flows.connections import SpeechTarget
    from flows.script_to_video import RunOptions, script_to_video

    monkeypatch.setenv("AVATARPIPE_MAX_COST_PER_RUN", "0.05")
    created = live.admin.stats()["jobs_created"]
    with pytest.raises(ConfigError, match="AVATARPIPE_MAX_COST_PER_RUN"):
        script_to_video(
            str(EX / "training-lesson.yaml"),
            SpeechTarget(endpoint=live.url, backend="emulator"),
            RunOptions(out_dir=str(tmp_path / "out")),
        )
    assert live.admin.stats()["jobs_created"] == created
