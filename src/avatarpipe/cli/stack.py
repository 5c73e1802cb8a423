"""The local stack behind ``make up`` / ``make down``.

``up`` starts, in the background and each in its own process group, with logs under ``.stack/``:

1. a Prefect server with its UI (SQLite under ``.stack/prefect``),
2. the Speech emulator (state under ``.stack/emulator``),
3. Azurite's blob service (data under ``.stack/azurite``),
4. ``avatarpipe serve``: the nightly and ad-hoc deployments, pointed at the three above,

waits until each answers, and prints the UI's URL. Every process is recorded in
``.stack/state.json`` with its pid, process group and start time, and ``down`` stops exactly
those process groups (a recycled pid with another start time is left alone). No secret is
written there: the Azurite connection string (a public, well-known development key) is handed to
``serve`` through its environment only.

Run it as ``python -m avatarpipe.cli.stack up|down|status``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
import typer

from avatarpipe.errors import AvatarpipeError, ConfigError, StorageError
from avatarpipe.publish.folder import write_json_atomic
from avatarpipe.storage import azurite

__all__ = ["StackProcess", "app", "down", "status", "up"]

REPO = Path(__file__).resolve().parents[3]
AZURITE_BIN = azurite.BINARY
STATE_FILE = "state.json"

app = typer.Typer(
    help="The local stack: Prefect server + UI, Speech emulator, Azurite, served deployments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class StackProcess:
    """One process the stack started.

    Attributes:
        name: What it is (``prefect-server``, ``emulator``, ``azurite``, ``serve``).
        pid: Its pid (also its process group id: each starts a new session).
        start_ticks: Its start time in clock ticks since boot (``/proc/<pid>/stat`` field 22),
            to tell it from a later process that reuses the pid.
        log: Its log file.
        url: Where it answers, when it listens.
    """

    name: str
    pid: int
    start_ticks: int | None
    log: str
    url: str | None = None


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    return stat.rsplit(")", 1)[1].split()


def _start_ticks(pid: int) -> int | None:
    """A process's start time (clock ticks since boot), or ``None`` when it does not exist."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def _alive(proc: StackProcess) -> bool:
    """Whether the recorded process still runs (same pid *and* start time, not a zombie)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(proc.pid, os.WNOHANG)  # reap it if it is our own exited child
    fields = _proc_stat(proc.pid)
    if fields is None or fields[0] == "Z":
        return False
    return proc.start_ticks is None or int(fields[19]) == proc.start_ticks


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_port(preferred: int) -> int:
    """``preferred`` when free (0 or busy: any free port)."""
    if preferred and _port_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_state(state_dir: Path) -> list[StackProcess]:
    path = state_dir / STATE_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [StackProcess(**p) for p in data.get("processes", [])]
    except (OSError, ValueError, TypeError) as exc:
        raise StorageError(f"{path} is unreadable ({exc}); remove it after checking `ps`") from None


def _write_state(state_dir: Path, procs: list[StackProcess], urls: dict[str, str]) -> None:
    write_json_atomic(
        state_dir / STATE_FILE,
        {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "urls": urls,
            "processes": [asdict(p) for p in procs],
        },
    )


def _spawn(
    name: str, argv: list[str], state_dir: Path, env: dict[str, str], cwd: Path
) -> StackProcess:
    log = state_dir / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n== {datetime.now(UTC).isoformat(timespec='seconds')} {name}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `down` stops exactly it
        )
    return StackProcess(name=name, pid=proc.pid, start_ticks=_start_ticks(proc.pid), log=str(log))


def _tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait(proc: StackProcess, ready: Callable[[], bool], timeout_s: float) -> None:
    """Wait until ``ready()`` is true; fail with the log's tail if the process exits or hangs.

    Raises:
        AvatarpipeError: The process exited or did not become ready in time.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if not _alive(proc):
            raise AvatarpipeError(f"{proc.name} exited; its log ({proc.log}):\n{_tail(proc.log)}")
        try:
            if ready():
                return
        except (OSError, httpx.HTTPError):
            pass
        if time.monotonic() > deadline:
            raise AvatarpipeError(
                f"{proc.name} did not become ready in {timeout_s:.0f} s; its log ({proc.log}):\n"
                f"{_tail(proc.log)}"
            )
        time.sleep(0.3)


def _tcp(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def _seed() -> Path:
    """The emulator's resource file: what the stack's Speech emulator holds (see cli.seed).

    Raises:
        ConfigError: ``AVATARPIPE_EMULATOR_RESOURCE`` names a missing file, or a setting is invalid.
    """
    from avatarpipe.cli.seed import resource_file
    from avatarpipe.settings import load_settings

    return resource_file(load_settings())


def _stop(proc: StackProcess, timeout_s: float = 15.0) -> str:
    """Stop one recorded process group: SIGTERM, then SIGKILL after ``timeout_s``."""
    if not _alive(proc):
        return f"{proc.name} (pid {proc.pid}) was not running"
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return f"{proc.name} (pid {proc.pid}) was not running"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(proc):
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return f"killed {proc.name} (pid {proc.pid}) after {timeout_s:.0f} s"
    # Children left in the group (uvicorn workers, flow-run subprocesses) go with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return f"stopped {proc.name} (pid {proc.pid})"


def up(
    state_dir: Path = Path(".stack"),
    *,
    scripts: str = "scripts",
    ui_port: int = 4200,
    emulator_port: int = 8765,
    azurite_port: int = 10000,
    renderer: str = "real",
    time_scale: float = 0.05,
    timeout_s: float = 120.0,
) -> dict[str, str]:
    """Start the stack in the background and return its URLs.

    Args:
        state_dir: Where state, data and logs go.
        scripts: The nightly source served (a folder, created when missing, or ``blob:<prefix>``).
        ui_port: Prefect server/UI port (another free port when busy; 0 = any).
        emulator_port: Speech emulator port (same rule).
        azurite_port: Azurite blob port (same rule).
        renderer: The emulator's renderer (``real`` or ``placeholder``).
        time_scale: The emulator's render-time scale.
        timeout_s: How long each component may take to become ready.

    Returns:
        ``{"ui": ..., "api": ..., "emulator": ..., "azurite": ...}``.

    Raises:
        ConfigError: The stack is already up, or Azurite is not installed.
        AvatarpipeError: A component did not start (everything started is stopped again).
    """
    state_dir = state_dir.resolve()
    running = [p for p in _read_state(state_dir) if _alive(p)]
    if running:
        raise ConfigError(
            f"the stack is already up ({', '.join(p.name for p in running)}): "
            "`make down` (python -m avatarpipe.cli.stack down) first"
        )
    if not AZURITE_BIN.exists():
        raise ConfigError(f"Azurite is not installed at {AZURITE_BIN}: run `make azurite`")
    state_dir.mkdir(parents=True, exist_ok=True)
    if not scripts.startswith("blob:"):
        Path(scripts).mkdir(parents=True, exist_ok=True)
    ports = {
        "ui": _pick_port(ui_port),
        "emulator": _pick_port(emulator_port),
        "azurite": _pick_port(azurite_port),
    }
    base_env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    prefect_home = state_dir / "prefect"
    prefect_home.mkdir(exist_ok=True)
    api = f"http://127.0.0.1:{ports['ui']}/api"
    urls = {
        "ui": f"http://127.0.0.1:{ports['ui']}",
        "api": api,
        "emulator": f"http://127.0.0.1:{ports['emulator']}",
        "azurite": azurite.account_url(ports["azurite"]),
    }
    bindir = Path(sys.executable).parent
    avatarpipe_bin = bindir / "avatarpipe"
    started: list[StackProcess] = []
    try:
        server_env = {
            **base_env,
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(ports["ui"]),
            "PREFECT_UI_API_URL": api,
        }
        server_env.pop("PREFECT_API_URL", None)
        server = _spawn(
            "prefect-server",
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["ui"]),
            ],  # fmt: skip
            state_dir,
            server_env,
            REPO,
        )
        server.url = urls["ui"]
        started.append(server)
        azurite_dir = state_dir / "azurite"
        azurite_dir.mkdir(exist_ok=True)
        blob_service = _spawn(
            "azurite",
            azurite.command(ports["azurite"], location=azurite_dir),
            state_dir,
            base_env,
            azurite_dir,
        )
        blob_service.url = urls["azurite"]
        started.append(blob_service)
        seed = _seed()
        emulator = _spawn(
            "emulator",
            [
                str(avatarpipe_bin if avatarpipe_bin.exists() else "avatarpipe"),
                "emulator",
                "serve",
                "--port",
                str(ports["emulator"]),
                "--state",
                str(state_dir / "emulator"),
                "--seed",
                str(seed),
                "--renderer",
                renderer,
                "--time-scale",
                str(time_scale),
            ],  # fmt: skip
            state_dir,
            base_env,
            REPO,
        )
        emulator.url = urls["emulator"]
        started.append(emulator)
        _write_state(state_dir, started, urls)
        _wait(blob_service, lambda: _tcp(ports["azurite"]), timeout_s)
        _wait(emulator, lambda: _tcp(ports["emulator"]), timeout_s)
        _wait(
            server,
            lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200,
            timeout_s,
        )
        serve_env = {
            **base_env,
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(prefect_home),
            "AVATARPIPE_SPEECH_ENDPOINT": base_env.get(
                "AVATARPIPE_SPEECH_ENDPOINT", urls["emulator"]
            ),
        }
        if "AVATARPIPE_SPEECH_ENDPOINT" not in base_env:
            serve_env["AVATARPIPE_BACKEND"] = "emulator"
        serve_env.setdefault(
            "AVATARPIPE_BLOB_CONNECTION_STRING", azurite.connection_string(ports["azurite"])
        )
        served = _spawn(
            "serve",
            [sys.executable, "-m", "avatarpipe.cli.serve", "--scripts", scripts],
            state_dir,
            serve_env,
            REPO,
        )
        started.append(served)
        _write_state(state_dir, started, urls)
        _wait(served, lambda: _deployments_ready(api), timeout_s)
    except BaseException:
        for proc in reversed(started):
            _stop(proc, timeout_s=5)
        (state_dir / STATE_FILE).unlink(missing_ok=True)
        raise
    return urls


def _deployments_ready(api: str) -> bool:
    resp = httpx.post(f"{api}/deployments/filter", json={"limit": 50}, timeout=5)
    names = {d["name"] for d in resp.json()} if resp.status_code == 200 else set()
    return {"nightly", "adhoc"} <= names


def down(state_dir: Path = Path(".stack")) -> list[str]:
    """Stop exactly the processes ``up`` recorded (newest first) and forget them.

    Args:
        state_dir: The folder ``up`` used.

    Returns:
        One line per process.

    Raises:
        StorageError: The state file is unreadable.
    """
    state_dir = state_dir.resolve()
    procs = _read_state(state_dir)
    lines = [_stop(p) for p in reversed(procs)]
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return lines


def status(state_dir: Path = Path(".stack")) -> list[tuple[StackProcess, bool]]:
    """The recorded processes and whether each still runs.

    Raises:
        StorageError: The state file is unreadable.
    """
    return [(p, _alive(p)) for p in _read_state(state_dir.resolve())]


StateOpt = Annotated[Path, typer.Option("--state-dir", help="State, data and logs folder.")]


@app.command("up")
def _up_cmd(
    state_dir: StateOpt = Path(".stack"),
    scripts: Annotated[
        str,
        typer.Option(
            help="Nightly source: a folder or blob:<prefix>.", envvar="AVATARPIPE_NIGHTLY_SOURCE"
        ),
    ] = "scripts",
    ui_port: Annotated[int, typer.Option(help="Prefect UI/API port (0: any free).")] = 4200,
    emulator_port: Annotated[int, typer.Option(help="Speech emulator port.")] = 8765,
    azurite_port: Annotated[int, typer.Option(help="Azurite blob port.")] = 10000,
    renderer: Annotated[str, typer.Option(help="Emulator renderer: real or placeholder.")] = "real",
    time_scale: Annotated[float, typer.Option(help="Emulator render-time scale.")] = 0.05,
) -> None:
    """Start the local stack in the background and print the Prefect UI's URL."""
    try:
        urls = up(
            state_dir,
            scripts=scripts,
            ui_port=ui_port,
            emulator_port=emulator_port,
            azurite_port=azurite_port,
            renderer=renderer,
            time_scale=time_scale,
        )
    except AvatarpipeError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(exc.exit_code) from None
    typer.echo(f"Speech emulator: {urls['emulator']}")
    typer.echo(f"Azurite (blob):  {urls['azurite']}")
    typer.echo(f"Prefect API:     {urls['api']}")
    typer.echo(f"serving nightly-scripts/nightly (02:00 UTC, {scripts}) and script-to-video/adhoc")
    typer.echo(f"logs: {state_dir}/logs/   stop: make down")
    typer.echo(f"Prefect UI: {urls['ui']}")


@app.command("down")
def _down_cmd(state_dir: StateOpt = Path(".stack")) -> None:
    """Stop exactly what `up` started."""
    try:
        lines = down(state_dir)
    except AvatarpipeError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(exc.exit_code) from None
    for line in lines or ["nothing to stop"]:
        typer.echo(line)


@app.command("status")
def _status_cmd(state_dir: StateOpt = Path(".stack")) -> None:
    """Show what `up` started and whether it still runs."""
    rows = status(state_dir)
    for proc, alive in rows:
        typer.echo(
            f"{proc.name:15} pid {proc.pid:<8} {'up' if alive else 'gone':5} {proc.url or ''}"
        )
    if not rows:
        typer.echo("the stack is not up")


if __name__ == "__main__":  # pragma: no cover - `python -m avatarpipe.cli.stack`
    app()
