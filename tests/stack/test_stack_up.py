"""`make up` for real: Prefect server + UI, emulator, Azurite and `avatarpipe serve` as processes.

One stack per module (about 20 s to start; `up` leaves a supervisor owning the components): the deployments are checked on the real server,
the nightly deployment is triggered twice through the API and executed by the served runner
(only the changed script is rendered the second time), a headless chromium opens the finished
run's page in the Prefect UI, and `down` stops exactly the recorded processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from avatarpipe.storage.azurite import ACCOUNT_KEY as AZURITE_KEY
from avatarpipe.storage.blob import BlobStore

sys.path.insert(0, str(Path(__file__).parent))
from scripts_fixture import write_script  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

pytestmark = [pytest.mark.azurite, pytest.mark.slow]


@dataclass
class Stack:
    state_dir: Path
    urls: dict[str, str]
    inbox: Path
    out: Path
    pids: list[int]

    @property
    def api(self) -> str:
        return self.urls["api"]


def _stack_cmd(
    *args: str, env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avatarpipe.cli.stack", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, azurite: object) -> Iterator[Stack]:
    # `azurite` makes sure the Azurite binary is installed (the stack starts its own instance).
    root = tmp_path_factory.mktemp("stack")
    inbox, out, state_dir = root / "inbox", root / "out", root / ".stack"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AVATARPIPE_", "PREFECT_API"))}
    env.update(
        {
            "AVATARPIPE_OUTPUT_DIR": str(out),
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_HOME": str(root / "client-home"),
        }
    )
    up = _stack_cmd(
        "up", "--state-dir", str(state_dir), "--scripts", str(inbox), "--ui-port", "0", "--emulator-port", "0",
        "--azurite-port", "0", "--renderer", "placeholder", "--time-scale", "0", env=env,
    )  # fmt: skip
    state_file = state_dir / "state.json"
    try:
        assert up.returncode == 0, f"stack up failed:\n{up.stdout}\n{up.stderr}"
        assert re.search(r"^Prefect UI: http://127\.0\.0\.1:\d+$", up.stdout, re.M), up.stdout
        state = json.loads(state_file.read_text(encoding="utf-8"))
        assert "AccountKey" not in state_file.read_text(encoding="utf-8"), (
            "no secret in the state file"
        )
        yield Stack(state_dir, state["urls"], inbox, out, [p["pid"] for p in state["processes"]])
    finally:
        down = _stack_cmd("down", "--state-dir", str(state_dir), env=env, timeout=60)
        print(down.stdout, down.stderr)


def _run_nightly(stack: Stack, timeout_s: float = 150) -> dict[str, Any]:
    deps = httpx.post(f"{stack.api}/deployments/filter", json={}, timeout=10).json()
    nightly_id = next(d["id"] for d in deps if d["name"] == "nightly")
    # The stack's Prefect server runs on SQLite: on a loaded machine a write can answer 5xx
    # ("database is locked"); the API asks clients to retry those, so the test does too.
    for _ in range(5):
        resp = httpx.post(
            f"{stack.api}/deployments/{nightly_id}/create_flow_run", json={}, timeout=30
        )
        if resp.status_code < 500:
            break
        time.sleep(2)
    assert resp.status_code == 201, f"create_flow_run: {resp.status_code} {resp.text[:500]}"
    run = resp.json()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got: dict[str, Any] = httpx.get(f"{stack.api}/flow_runs/{run['id']}", timeout=10).json()
        if got["state"]["type"] in FINAL:
            return got
        time.sleep(0.5)
    log = (stack.state_dir / "logs" / "serve.log").read_text(errors="replace")[-3000:]
    raise AssertionError(f"nightly run did not finish in {timeout_s} s; serve.log:\n{log}")


def _index(out: Path) -> dict[str, Any]:
    [path] = (out / ".nightly").glob("index-*.json")
    return json.loads(path.read_text(encoding="utf-8"))["scripts"]  # type: ignore[no-any-return]


def test_served_deployments_exist_with_schedules_on_the_real_server(stack: Stack) -> None:
    deps = {
        d["name"]: d
        for d in httpx.post(f"{stack.api}/deployments/filter", json={}, timeout=10).json()
    }
    nightly, adhoc = deps["nightly"], deps["adhoc"]
    assert [
        (s["schedule"]["cron"], s["schedule"]["timezone"], s["active"])
        for s in nightly["schedules"]
    ] == [("0 2 * * *", "UTC", True)]
    assert adhoc["schedules"] == []
    assert nightly["global_concurrency_limit"]["limit"] == 1
    assert nightly["parameters"]["source"] == str(stack.inbox)
    assert nightly["parameters"]["target"]["endpoint"] == stack.urls["emulator"]
    assert "key" not in json.dumps(nightly["parameters"]).lower(), "no secret in parameters"
    # The server's scheduler will start it: it is served (a runner polls for it) and not paused.
    assert nightly["paused"] is False
    flows = {
        f["id"]: f["name"]
        for f in httpx.post(f"{stack.api}/flows/filter", json={}, timeout=10).json()
    }
    assert (
        flows[nightly["flow_id"]] == "nightly-scripts"
        and flows[adhoc["flow_id"]] == "script-to-video"
    )


def test_triggered_nightly_runs_render_only_changed_scripts(stack: Stack) -> None:
    write_script(stack.inbox, "alpha", "Alpha news", "Alpha says hello.")
    write_script(stack.inbox, "beta", "Beta news", "Beta says hello.")
    first = _run_nightly(stack)
    assert first["state"]["type"] == "COMPLETED", first["state"]
    index = _index(stack.out)
    assert set(index) == {"alpha.yaml", "beta.yaml"}
    # Published to the stack's Azurite too, byte for byte, with content types.
    store = BlobStore.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={stack.urls['azurite']};",
        "avatarpipe",
    )
    [alpha_dir] = [p for p in (stack.out / "alpha-news").iterdir() if not p.name.startswith(".")]
    names = store.list_names(f"alpha-news/{alpha_dir.name}/")
    assert {n.rsplit("/", 1)[1] for n in names} == {p.name for p in alpha_dir.iterdir()}
    assert (
        store.read_bytes(f"alpha-news/{alpha_dir.name}/alpha-news.mp4")
        == (alpha_dir / "alpha-news.mp4").read_bytes()
    )
    ctype, metadata, _md5 = store.properties(f"alpha-news/{alpha_dir.name}/alpha-news.mp4")
    assert ctype == "video/mp4" and metadata["script"] == "alpha-news" and metadata["job_ids"]
    assert store.properties(f"alpha-news/{alpha_dir.name}/manifest.json")[0] == "application/json"
    emu = httpx.Client(
        base_url=stack.urls["emulator"], headers={"Ocp-Apim-Subscription-Key": "k"}, timeout=10
    )
    assert emu.get("/emulator/stats").json()["jobs_created"] == 2

    write_script(stack.inbox, "beta", "Beta news", "Beta now says something else.")
    second = _run_nightly(stack)
    assert second["state"]["type"] == "COMPLETED", second["state"]
    after = _index(stack.out)
    assert after["alpha.yaml"] == index["alpha.yaml"], "unchanged script: untouched"
    assert after["beta.yaml"]["sha256"] != index["beta.yaml"]["sha256"]
    assert emu.get("/emulator/stats").json()["jobs_created"] == 3, (
        "only the changed script was rendered"
    )
    assert len([p for p in (stack.out / "alpha-news").iterdir() if not p.name.startswith(".")]) == 1
    assert len([p for p in (stack.out / "beta-news").iterdir() if not p.name.startswith(".")]) == 2


def _chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.skip("chromium is missing and cannot be installed here (needs apt-get as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(
                f"chromium could not be installed: {' '.join(argv[1:])}: {done.stderr[-300:]}"
            )
    return CHROMIUM


def _browse(url: str, profile: Path, screenshot: Path | None = None) -> str:
    argv = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--window-size=1400,1000",
    ]  # fmt: skip
    if screenshot is not None:
        subprocess.run(
            [*argv, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True
        )
        assert screenshot.stat().st_size > 10_000
    dom = subprocess.run(
        [*argv, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    )
    return dom.stdout


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _finished_video_runs(stack: Stack) -> list[dict[str, Any]]:
    query = {
        "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}, "name": {"like_": "video-"}},
        "sort": "START_TIME_DESC",
    }
    return httpx.post(f"{stack.api}/flow_runs/filter", json=query, timeout=10).json()  # type: ignore[no-any-return]


def test_the_prefect_ui_shows_the_summary_artifact_of_a_finished_run(
    stack: Stack, tmp_path: Path
) -> None:
    if not _finished_video_runs(stack):  # when this test runs on its own
        write_script(stack.inbox, "gamma", "Gamma news", "Gamma says hello.")
        assert _run_nightly(stack)["state"]["type"] == "COMPLETED"
    run = _finished_video_runs(stack)[0]
    artifacts = {a["key"]: a for a in httpx.post(
        f"{stack.api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}, timeout=10
    ).json()}  # fmt: skip
    assert {"avatarpipe-summary", "avatarpipe-videos", "avatarpipe-poster"} <= set(artifacts)
    assert artifacts["avatarpipe-poster"]["data"].startswith("data:image/png;base64,")
    assert "sig=" not in json.dumps(list(artifacts.values())), "no SAS in any artifact"

    ui, shots = stack.urls["ui"], Path(os.environ.get("STACK_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page = _text(
        _browse(
            f"{ui}/v2/runs/flow-run/{run['id']}?tab=Artifacts",
            tmp_path / "p1",
            shots / "run-artifacts.png",
        )
    )
    assert run["name"] in page and "Completed" in page
    assert "avatarpipe-summary" in page and "run summary" in page, page[-1500:]
    assert "avatarpipe-poster" in page

    summary = _text(
        _browse(
            f"{ui}/v2/artifacts/artifact/{artifacts['avatarpipe-summary']['id']}",
            tmp_path / "p2",
            shots / "summary.png",
        )
    )
    assert "avatarpipe run summary" in summary
    assert "avatar seconds billed" in summary and "estimate $" in summary
    assert f"{run['name'].removeprefix('video-')}-news.mp4" in summary

    poster = _browse(
        f"{ui}/v2/artifacts/artifact/{artifacts['avatarpipe-poster']['id']}",
        tmp_path / "p3",
        shots / "poster.png",
    )
    assert re.search(r'<img[^>]+src="data:image/png;base64,', poster), (
        "the poster is rendered as an image"
    )


def test_down_stops_exactly_the_recorded_processes(stack: Stack, tmp_path: Path) -> None:
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AVATARPIPE_")}
        status = _stack_cmd("status", "--state-dir", str(stack.state_dir), env=env)
        # The supervisor and the four components it owns.
        assert status.stdout.count(" up ") == 5, status.stdout
        down = _stack_cmd("down", "--state-dir", str(stack.state_dir), env=env, timeout=90)
        assert down.returncode == 0 and down.stdout.count("stopped") == 5, down.stdout
        for pid in stack.pids:
            stat = Path(f"/proc/{pid}/stat")
            assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", (
                f"pid {pid} still runs"
            )
        assert bystander.poll() is None, "a process the stack did not start is left alone"
        assert not (stack.state_dir / "state.json").exists()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{stack.api}/health", timeout=2)
        again = _stack_cmd("down", "--state-dir", str(stack.state_dir), env=env)
        assert again.returncode == 0 and "nothing to stop" in again.stdout
    finally:
        bystander.kill()
        bystander.wait()
