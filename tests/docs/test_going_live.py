"""docs/going-live.md, run as written against a standalone Speech emulator and Azurite.

Every ```bash block of the guide runs in order, each with ``bash -e`` in one temporary folder
with a fresh ``PREFECT_HOME``; the exports a block makes reach the next ones, as in one shell.
A block preceded by ``<!-- not run: REASON -->`` is skipped (the ``az`` commands, the install
step); ``<!-- runs until stopped -->`` starts it in the background (``avatarpipe serve``).
The Azure values the guide exports are replaced by the emulator's URL and key, Azurite's
connection string and a local Prefect port. The test then checks exit codes, the produced files
and the emulator's own counters (``/emulator/stats``), not avatarpipe's logs.

What the emulator holds stands for the Speech Studio steps of the guide: the script's custom
avatar, deployed, and its custom voice endpoint, in the same resource.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from azure.storage.blob import ContainerClient
from azurite_fixture import Azurite

from avatarpipe.speech.emulator_admin import EmulatorAdminClient

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "going-live.md"
BIN = Path(sys.executable).parent
KEY = "going-live-test-key"
NOT_RUN = "not run: "
BACKGROUND = "runs until stopped"
BLOCK = re.compile(r"(?:<!--\s*(?P<mark>[^>]*?)\s*-->\s*\n)?```bash\n(?P<code>.*?)```", re.S)
STEP_TIMEOUT_S = 240


@dataclass(frozen=True)
class Block:
    """One ```bash block of the guide."""

    line: int
    code: str
    mark: str | None

    @property
    def runs(self) -> bool:
        return not (self.mark or "").startswith(NOT_RUN)


def guide_blocks() -> list[Block]:
    text = GUIDE.read_text(encoding="utf-8")
    return [
        Block(text.count("\n", 0, m.start()) + 1, m.group("code"), m.group("mark"))
        for m in BLOCK.finditer(text)
    ]


def _first_script(blocks: list[Block]) -> tuple[str, dict[str, Any]]:
    """The script the guide writes with ``cat > PATH <<'EOF'``: its path and content."""
    for block in blocks:
        found = re.search(r"cat > (\S+) <<'EOF'\n(.*?)\nEOF\n", block.code, re.S)
        if found and block.runs:
            return found.group(1), yaml.safe_load(found.group(2))
    raise AssertionError("the guide writes no script with cat > ... <<'EOF'")


def _substitute(code: str, values: dict[str, str], hits: dict[str, int]) -> str:
    """Replace the value of every ``export NAME=...`` line whose NAME is in ``values``."""

    def repl(m: re.Match[str]) -> str:
        hits[m.group(1)] += 1
        return f"export {m.group(1)}='{values[m.group(1)]}'"

    names = "|".join(map(re.escape, values))
    return re.sub(rf"^export ({names})=.*$", repl, code, flags=re.M)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@dataclass
class Emulator:
    url: str
    admin: EmulatorAdminClient

    def stats(self) -> dict[str, Any]:
        return self.admin.stats()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """``avatarpipe emulator serve`` on a free port, requiring a key, as fast as it can render."""
    log = tmp_path / "emulator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "avatarpipe"),
                "emulator",
                "serve",
                "--port",
                "0",
                "--key",
                KEY,
                "--state",
                str(tmp_path / "emulator"),
                "--time-scale",
                "0",
                "--renderer",
                "placeholder",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"listening on (http://\S+)", log.read_text())):
            assert proc.poll() is None, f"the emulator exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the emulator did not start:\n{log.read_text()}"
            time.sleep(0.2)
        with EmulatorAdminClient(found.group(1), key=KEY) as admin:
            yield Emulator(found.group(1), admin)
    finally:
        _kill_group(proc)


class Shell:
    """Runs guide blocks with ``bash -e`` in one folder, carrying exports from block to block."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.state = cwd.parent / "guide-env.sh"
        self.background: list[tuple[subprocess.Popen[bytes], Path]] = []

    def _script(self, code: str, *, keep_env: bool) -> Path:
        path = self.cwd.parent / f"step-{len(list(self.cwd.parent.glob('step-*')))}.sh"
        parts = [f'[ -f "{self.state}" ] && source "{self.state}"', code]
        if keep_env:
            parts.append(f'export -p > "{self.state}"')
        path.write_text("\n".join(parts) + "\n")
        return path

    def run(self, block: Block, code: str) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", str(self._script(code, keep_env=True))],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
        )
        assert done.returncode == 0, (
            f"docs/going-live.md:{block.line} exited {done.returncode} after "
            f"{time.monotonic() - started:.0f} s:\n{code}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
        return done

    def start(self, code: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.cwd.parent / f"background-{len(self.background)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["bash", "-e", str(self._script(code, keep_env=False))],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.background.append((proc, log))
        return proc, log

    def stop(self) -> None:
        for proc, _log in reversed(self.background):
            _kill_group(proc)


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    work = tmp_path / "work"
    work.mkdir()
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AVATARPIPE_", "PREFECT_"))}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_API_PORT": str(_free_port()),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            # Test speed only: the served runner looks for runs every second (default 10), and
            # runs poll the emulator every second (the Azure default is 20 s).
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "AVATARPIPE_POLL_INTERVAL_S": "1",
            "COLUMNS": "200",
        }
    )
    sh = Shell(work, env)
    try:
        yield sh
    finally:
        sh.stop()
        pid_file = home / "server.pid"  # `prefect server start --background`, if still up
        if pid_file.is_file():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


def _deployments(api: str) -> set[str]:
    try:
        resp = httpx.post(f"{api}/deployments/filter", json={"limit": 50}, timeout=5)
        flows = httpx.post(f"{api}/flows/filter", json={"limit": 50}, timeout=5)
    except httpx.HTTPError:
        return set()
    if resp.status_code != 200 or flows.status_code != 200:
        return set()
    names = {f["id"]: f["name"] for f in flows.json()}
    return {f"{names.get(d['flow_id'])}/{d['name']}" for d in resp.json()}


def _wait_for_deployments(api: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    wanted = {"nightly-scripts/nightly", "script-to-video/adhoc"}
    deadline = time.monotonic() + 180
    while not wanted <= _deployments(api):
        assert proc.poll() is None, f"avatarpipe serve exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no deployments after 180 s:\n{log.read_text()}"
        time.sleep(0.5)


def _seed_for(script: dict[str, Any]) -> dict[str, Any]:
    """What Speech Studio holds after steps 2 and 3: the avatar deployed, the voice endpoint."""
    voice = script["voice"]
    model = f"model-{voice['name'].lower()}"
    return {
        "avatars": [{"name": script["avatar"]["character"], "deployed": True}],
        "projects": [{"id": "going-live", "kind": "ProfessionalVoice", "locale": "en-US"}],
        "models": [
            {
                "id": model,
                "voiceName": voice["name"],
                "projectId": "going-live",
                "locale": voice.get("locale", "en-US"),
                "recipe": {"kind": "Default"},
            }
        ],
        "endpoints": [{"id": voice["deployment_id"], "projectId": "going-live", "modelId": model}],
    }


def _route(stats: dict[str, Any], route: str, status: str) -> int:
    return int(stats["requests_by_route"].get(route, {}).get(status, 0))


def test_the_guide_runs_every_step_but_the_azure_ones() -> None:
    blocks = guide_blocks()
    marks = {b.mark for b in blocks if b.mark}
    assert all(m == BACKGROUND or m.startswith(NOT_RUN) for m in marks), marks
    run = "\n".join(b.code for b in blocks if b.runs)
    for step in (
        "avatarpipe validate ",
        "avatarpipe run ",
        "avatarpipe serve ",
        "prefect deployment run nightly-scripts/nightly --watch",
        "--teardown both",
        "prefect server start",
    ):
        assert step in run, f"no block that runs does {step!r}"
    skipped = [b for b in blocks if not b.runs]
    for block in skipped:
        if block.mark == f"{NOT_RUN}needs Azure":
            assert re.search(r"^az ", block.code, re.M), f"line {block.line}: no az command"
        assert "avatarpipe run" not in block.code, f"line {block.line}: a run is skipped"
    assert any(b.mark == BACKGROUND and "avatarpipe serve" in b.code for b in blocks)


@pytest.mark.azurite
@pytest.mark.slow
def test_going_live_guide_runs_against_the_emulator(
    emulator: Emulator, shell: Shell, azurite: Azurite
) -> None:
    blocks = guide_blocks()
    _path, script = _first_script(blocks)
    emulator.admin.seed(_seed_for(script))
    api = f"http://127.0.0.1:{shell.env['PREFECT_SERVER_API_PORT']}/api"
    values = {
        "AVATARPIPE_SPEECH_ENDPOINT": emulator.url,
        "AVATARPIPE_SPEECH_KEY": KEY,
        "AVATARPIPE_BLOB_CONNECTION_STRING": azurite.connection_string,
        # The emulator does not model the S0 budget; at 2 a minute this test would take minutes.
        "AVATARPIPE_REQUESTS_PER_MINUTE": "600",
        "PREFECT_API_URL": api,
    }
    hits = dict.fromkeys(values, 0)
    out = shell.cwd / "outputs"
    slug = script["slug"]
    container = re.search(r"^export AVATARPIPE_BLOB_CONTAINER=(\S+)$", GUIDE.read_text(), re.M)
    assert container, "the guide sets no AVATARPIPE_BLOB_CONTAINER"
    ran: list[str] = []

    for block in blocks:
        if not block.runs:
            continue
        code = _substitute(block.code, values, hits)
        if block.mark == BACKGROUND:
            proc, log = shell.start(code)
            _wait_for_deployments(api, proc, log)
            ran.append("serve")
            continue
        done = shell.run(block, code)
        if "avatarpipe validate" in code:
            assert f"ok: {slug}: 1 scene(s)" in done.stdout
            ran.append("validate")
        if "/customvoice/endpoints/" in code:
            stats = emulator.stats()
            assert _route(stats, "GET /avatar/batchsyntheses", "200") == 1
            assert _route(stats, "GET /customvoice/endpoints/{id}", "200") == 1
            assert '"status":"Succeeded"' in done.stdout.replace(" ", "")
            ran.append("check")
        if "--teardown" in code:
            jobs_before = emulator.stats()["jobs_created"]
        if re.search(r"^avatarpipe run \S+\s*$", code, re.M):
            videos = sorted(out.glob(f"{slug}/*/{slug}.mp4"))
            assert len(videos) == 1 and videos[0].stat().st_size > 0, done.stderr
            assert (videos[0].parent / "manifest.json").is_file()
            stats = emulator.stats()
            # The avatar probe and the scene's job, each created once; the probe is deleted.
            assert stats["jobs_created"] == 2, stats
            assert set(stats["puts_by_job_id"].values()) == {1}, stats
            assert _route(stats, "DELETE /avatar/batchsyntheses/{id}", "204") == 1
            blobs = set(
                ContainerClient.from_connection_string(
                    azurite.connection_string, container.group(1)
                ).list_blob_names(name_starts_with=f"{slug}/")
            )
            run_id = videos[0].parent.name
            assert f"{slug}/{run_id}/{slug}.mp4" in blobs, blobs
            assert f"{slug}/{run_id}/manifest.json" in blobs, blobs
            ran.append("run")
        if "nightly-scripts/nightly --watch" in code:
            assert "Completed" in done.stdout, done.stdout[-2000:]
            assert list((out / ".nightly").glob("index-*.json"))
            assert len(list(out.glob(f"{slug}/*/{slug}.mp4"))) == 2
            stats = emulator.stats()
            assert stats["jobs_created"] == 2, "the nightly run paid again for the same scene"
            assert set(stats["puts_by_job_id"].values()) == {1}, stats
            ran.append("nightly")
        if "--teardown both" in code:
            stats = emulator.stats()
            assert stats["jobs_created"] == jobs_before
            voice = script["voice"]["deployment_id"]
            assert _route(stats, "POST /customvoice/endpoints/{id}:suspend", "202") == 1, stats
            endpoint = httpx.get(
                f"{emulator.url}/customvoice/endpoints/{voice}",
                params={"api-version": "2026-01-01"},
                headers={"Ocp-Apim-Subscription-Key": KEY},
                timeout=10,
            ).json()
            assert endpoint["status"] in ("Disabling", "Disabled"), endpoint
            ran.append("teardown")
        if "prefect server stop" in code:
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"{api}/health", timeout=2).raise_for_status()
            ran.append("server stop")

    assert hits == dict.fromkeys(values, 1), f"export lines the test replaces: {hits}"
    assert ran == [
        "validate",
        "check",
        "run",
        "serve",
        "nightly",
        "teardown",
        "server stop",
    ]
