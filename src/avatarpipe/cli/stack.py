"""The local stack behind ``make up`` / ``make stack`` / ``make down``.

Two shapes, started by one supervisor process that owns every component as its child (each in
its own process group, killed by the kernel if the supervisor dies, even by ``kill -9``):

* **served** (``avatarpipe stack up``, the default): a Prefect server on SQLite, the Speech
  emulator, Azurite, and one ``avatarpipe serve`` process executing both deployments;
* **scale-out** (``avatarpipe stack up --workers N --postgres``): PostgreSQL, a Prefect server on
  it, the emulator, Azurite, the process work pool ``avatarpipe`` with the deployments of
  ``prefect.yaml`` on it, the shared request limit, the crash automations, and N Prefect workers,
  each in a working directory of its own with its own output root, as separate machines would be:
  they share only the Prefect API, the Speech endpoint and the blob container.

A flow run whose worker dies stops sending heartbeats; an automation marks it ``Crashed`` after
``--crash-after`` seconds and a second one puts a crashed run back to ``Scheduled`` (twice at
most), so another worker runs it again: it re-attaches to its jobs through the result store.

``up`` starts the supervisor in the background, waits until everything answers, prints the URLs
and returns (``--foreground`` keeps it attached; Ctrl-C stops it). The supervisor and its
children are recorded in ``<state-dir>/state.json`` (pid and start time, no secret: the Azurite
connection string, a public development key, reaches the children through their environment
only), and ``down`` stops exactly those. Logs go to ``<state-dir>/logs/``.

Run it as ``avatarpipe stack up|down|status`` or ``python -m avatarpipe.cli.stack ...``.
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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import typer

from avatarpipe.errors import AvatarpipeError, ConfigError, StorageError
from avatarpipe.processes import child_process_kwargs, stop_child
from avatarpipe.publish.folder import write_json_atomic
from avatarpipe.storage import azurite
from avatarpipe.storage.postgres import Cluster

__all__ = ["POOL", "Stack", "StackConfig", "StackProcess", "app", "down", "status", "up"]

REPO = Path(__file__).resolve().parents[3]
STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
POOL = "avatarpipe"
"""The process work pool of ``prefect.yaml``."""
CRASH_AUTOMATION = "avatarpipe: a flow run without heartbeats crashed"
RERUN_AUTOMATION = "avatarpipe: run a crashed flow run again"
HEARTBEAT_S = 30  # Prefect's shortest flow-run heartbeat interval

app = typer.Typer(
    help="The local stack: Prefect server + UI, Speech emulator, Azurite, and the served "
    "deployments or a work pool with N workers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class StackProcess:
    """One process of the stack.

    Attributes:
        name: What it is (``supervisor``, ``postgres``, ``prefect-server``, ``emulator``,
            ``azurite``, ``serve``, ``worker-1``...).
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


@dataclass
class StackConfig:
    """What to start.

    Attributes:
        state_dir: Where state, data and logs go.
        scripts: The nightly source of the served shape (a folder, or ``blob:<prefix>``).
        ui_port: Prefect server/UI port (another free port when busy; 0 = any).
        emulator_port: Speech emulator port (same rule).
        azurite_port: Azurite blob port (same rule).
        renderer: The emulator's renderer (``real`` or ``placeholder``).
        time_scale: The emulator's render-time scale.
        workers: 0 for the served shape, else how many Prefect workers.
        postgres: Run the Prefect server on PostgreSQL (else SQLite).
        postgres_data: The PostgreSQL cluster's folder (default ``<state_dir>/postgres``).
        worker_limit: Most flow runs each worker executes at once.
        worker_poll_s: Seconds between a worker's polls for scheduled runs.
        crash_after_s: Seconds without a heartbeat after which a flow run is crashed.
        requests_per_minute: The shared request budget (default:
            ``AVATARPIPE_REQUESTS_PER_MINUTE``).
        timeout_s: How long each component may take to become ready.
    """

    state_dir: Path = Path(".stack")
    scripts: str = "scripts"
    ui_port: int = 4200
    emulator_port: int = 8765
    azurite_port: int = 10000
    renderer: str = "real"
    time_scale: float = 0.05
    workers: int = 0
    postgres: bool = False
    postgres_data: Path | None = None
    worker_limit: int = 4
    worker_poll_s: float = 5.0
    crash_after_s: int = 90
    requests_per_minute: float | None = None
    timeout_s: float = 180.0

    def to_json(self) -> dict[str, Any]:
        """The config as JSON data (paths as strings)."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackConfig:
        """The config from :meth:`to_json` data."""
        conf = cls(**data)
        conf.state_dir = Path(conf.state_dir)
        conf.postgres_data = Path(conf.postgres_data) if conf.postgres_data else None
        return conf


# -- processes ---------------------------------------------------------------------------------


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


def _tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _tcp(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def _stop_recorded(proc: StackProcess, timeout_s: float = 15.0) -> str:
    """Stop a recorded process group that is not our child: SIGTERM, then SIGKILL."""
    if not _alive(proc):
        return f"{proc.name} (pid {proc.pid}) was not running"
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return f"{proc.name} (pid {proc.pid}) was not running"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(proc):
        time.sleep(0.2)
    # Whatever is left in the group (flow-run subprocesses, uvicorn workers) goes with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return f"stopped {proc.name} (pid {proc.pid})"


# -- the stack ---------------------------------------------------------------------------------


@dataclass
class _Child:
    record: StackProcess
    popen: subprocess.Popen[bytes]


@dataclass
class Stack:
    """The stack's components, started as children of this process (they die with it).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. Start it from the
    thread that lives as long as the stack: the kernel kills the children when it exits.

    Args:
        config: What to start.
    """

    config: StackConfig
    urls: dict[str, str] = field(default_factory=dict)
    children: list[_Child] = field(default_factory=list)
    started_s: float | None = None

    @property
    def state_dir(self) -> Path:
        """The resolved state folder."""
        return self.config.state_dir.resolve()

    def worker_dir(self, index: int) -> Path:
        """Worker ``index``'s working directory (1-based); its outputs are under ``outputs/``."""
        return self.state_dir / "workers" / f"worker-{index}"

    @property
    def processes(self) -> list[StackProcess]:
        """The records of the started children."""
        return [c.record for c in self.children]

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # - starting --------------------------------------------------------------------------------

    def _spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        url: str | None = None,
        **popen: Any,
    ) -> StackProcess:
        log = self.state_dir / "logs" / f"{name}.log"
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
                **popen,
                **child_process_kwargs(),
            )
        record = StackProcess(name, proc.pid, _start_ticks(proc.pid), str(log), url)
        self.children.append(_Child(record, proc))
        return record

    def _wait(self, proc: StackProcess, ready: Callable[[], bool]) -> None:
        """Wait until ``ready()``; fail with the log's tail if the process exits or hangs.

        Raises:
            AvatarpipeError: The process exited or did not become ready in time.
        """
        deadline = time.monotonic() + self.config.timeout_s
        while True:
            if not _alive(proc):
                raise AvatarpipeError(
                    f"{proc.name} exited; its log ({proc.log}):\n{_tail(proc.log)}"
                )
            try:
                if ready():
                    return
            except (OSError, httpx.HTTPError):
                pass
            if time.monotonic() > deadline:
                raise AvatarpipeError(
                    f"{proc.name} did not become ready in {self.config.timeout_s:.0f} s; "
                    f"its log ({proc.log}):\n{_tail(proc.log)}"
                )
            time.sleep(0.3)

    def start(self) -> dict[str, str]:
        """Start every component and wait until each answers.

        Returns:
            ``{"ui", "api", "emulator", "azurite"}`` URLs (and ``"postgres"`` with ``--postgres``).

        Raises:
            ConfigError: Azurite or PostgreSQL is not installed, or a folder is unusable.
            AvatarpipeError: A component did not start (everything started is stopped again).
        """
        if not azurite.BINARY.exists():
            raise ConfigError(f"Azurite is not installed at {azurite.BINARY}: run `make azurite`")
        self.started_s = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise
        return self.urls

    def _start_all(self) -> None:
        conf = self.config
        ports = {
            "ui": _pick_port(conf.ui_port),
            "emulator": _pick_port(conf.emulator_port),
            "azurite": _pick_port(conf.azurite_port),
        }
        api = f"http://127.0.0.1:{ports['ui']}/api"
        self.urls = {
            "ui": f"http://127.0.0.1:{ports['ui']}",
            "api": api,
            "emulator": f"http://127.0.0.1:{ports['emulator']}",
            "azurite": azurite.account_url(ports["azurite"]),
        }
        database = self._start_postgres() if conf.postgres else None
        server = self._start_server(ports["ui"], database)
        blob = self._start_azurite(ports["azurite"])
        emulator = self._start_emulator(ports["emulator"])
        self._wait(blob, lambda: _tcp(ports["azurite"]))
        self._wait(emulator, lambda: _tcp(ports["emulator"]))
        self._wait(server, lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200)
        env = self._run_env(ports["azurite"])
        if conf.workers:
            self._register(env)
            self._start_workers(env)
        else:
            self._start_serve(env)

    def _base_env(self) -> dict[str, str]:
        env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
        env.pop("PREFECT_API_URL", None)
        return env

    def _run_env(self, azurite_port: int) -> dict[str, str]:
        """The environment every run gets: the API, the Speech endpoint, the container."""
        env = {**self._base_env(), "PREFECT_API_URL": self.urls["api"]}
        if "AVATARPIPE_SPEECH_ENDPOINT" not in env:
            env["AVATARPIPE_SPEECH_ENDPOINT"] = self.urls["emulator"]
            env["AVATARPIPE_BACKEND"] = "emulator"
        env.setdefault("AVATARPIPE_BACKEND", "azure")
        env.setdefault("AVATARPIPE_BLOB_CONNECTION_STRING", azurite.connection_string(azurite_port))
        if self.config.requests_per_minute is not None:
            env["AVATARPIPE_REQUESTS_PER_MINUTE"] = f"{self.config.requests_per_minute:g}"
        return env

    def _start_postgres(self) -> Cluster:
        data = self.config.postgres_data or self.state_dir / "postgres"
        cluster = Cluster(data.resolve(), _pick_port(0))
        cluster.init()
        proc = self._spawn(
            "postgres",
            cluster.command(),
            self._base_env(),
            cluster.data_dir,
            url=f"postgresql://127.0.0.1:{cluster.port}",
            **cluster.popen_kwargs(),
        )
        self.urls["postgres"] = f"postgresql://127.0.0.1:{cluster.port}/prefect"
        self._wait(proc, cluster.ready)
        cluster.create_database()
        return cluster

    def _start_server(self, port: int, database: Cluster | None) -> StackProcess:
        home = self.state_dir / "prefect"
        home.mkdir(exist_ok=True)
        env = {
            **self._base_env(),
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_UI_API_URL": self.urls["api"],
        }
        if database is not None:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database.url
        argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
        return self._spawn(
            "prefect-server", [*argv, "--port", str(port)], env, REPO, url=self.urls["ui"]
        )

    def _start_azurite(self, port: int) -> StackProcess:
        folder = self.state_dir / "azurite"
        folder.mkdir(exist_ok=True)
        argv = azurite.command(port, location=folder)
        return self._spawn("azurite", argv, self._base_env(), folder, url=self.urls["azurite"])

    def _start_emulator(self, port: int) -> StackProcess:
        conf = self.config
        seed = _seed()
        argv = [
            _avatarpipe_bin(), "emulator", "serve", "--port", str(port),
            "--state", str(self.state_dir / "emulator"), "--seed", str(seed),
            "--renderer", conf.renderer, "--time-scale", str(conf.time_scale),
        ]  # fmt: skip
        return self._spawn("emulator", argv, self._base_env(), REPO, url=self.urls["emulator"])

    def _start_serve(self, env: dict[str, str]) -> None:
        scripts = self.config.scripts
        if not scripts.startswith("blob:"):
            Path(scripts).mkdir(parents=True, exist_ok=True)
        serve_env = {**env, "PREFECT_HOME": str(self.state_dir / "prefect")}
        argv = [sys.executable, "-m", "avatarpipe.cli.serve", "--scripts", scripts]
        served = self._spawn("serve", argv, serve_env, REPO)
        self._wait(served, lambda: _deployments_ready(self.urls["api"]))

    def _register(self, env: dict[str, str]) -> None:
        """The work pool, ``prefect.yaml``'s deployments on it, the request limit, automations.

        Raises:
            AvatarpipeError: ``prefect deploy`` failed (its output is in the message).
        """
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from flows.connections import ensure_rate_limit
        from flows.deployments import ensure_crash_reruns, ensure_process_pool

        with temporary_settings(updates={PREFECT_API_URL: self.urls["api"]}):
            ensure_process_pool(POOL)
            from avatarpipe.settings import load_settings

            rpm = self.config.requests_per_minute or load_settings().requests_per_minute
            ensure_rate_limit("avatarpipe-speech-requests", rpm)
            ensure_crash_reruns(
                crash_after_s=self.config.crash_after_s,
                crash_name=CRASH_AUTOMATION,
                rerun_name=RERUN_AUTOMATION,
            )
        deploy_env = {**env, "PREFECT_HOME": str(self.state_dir / "prefect")}
        argv = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"]
        argv += ["--prefect-file", str(REPO / "prefect.yaml")]
        log = self.state_dir / "logs" / "deploy.log"
        with log.open("ab") as out:
            done = subprocess.run(
                argv,
                cwd=REPO,
                env=deploy_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=self.config.timeout_s,
                check=False,
                **child_process_kwargs(),
            )
        if done.returncode != 0:
            raise AvatarpipeError(f"prefect deploy failed; its log ({log}):\n{_tail(str(log))}")
        _set_adhoc_budget(self.urls["api"], rpm)

    def _start_workers(self, env: dict[str, str]) -> None:
        conf = self.config
        names = [f"worker-{i}" for i in range(1, conf.workers + 1)]
        for index, name in enumerate(names, start=1):
            workdir = self.worker_dir(index)
            (workdir / "outputs").mkdir(parents=True, exist_ok=True)
            worker_env = {
                **env,
                "PREFECT_HOME": str(workdir / ".prefect"),
                "PREFECT_WORKER_QUERY_SECONDS": f"{conf.worker_poll_s:g}",
                "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S),
                "AVATARPIPE_WORKDIR": str(workdir),
                "AVATARPIPE_OUTPUT_DIR": str(workdir / "outputs"),
            }
            # The pool's default queue, and one of its own, so a run can be pinned to it.
            _ensure_queue(self.urls["api"], name)
            argv = [
                sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
                "--type", "process", "--name", name, "--limit", str(conf.worker_limit),
                "--work-queue", "default", "--work-queue", name,
            ]  # fmt: skip
            self._spawn(name, argv, worker_env, workdir)
        first = self.children[-1].record
        self._wait(first, lambda: set(names) <= _online_workers(self.urls["api"]))

    # - stopping --------------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Stop every started component, newest first (each with its process group).

        Returns:
            One line per component.
        """
        lines = []
        for child in reversed(self.children):
            if child.popen.poll() is not None:
                lines.append(f"{child.record.name} (pid {child.record.pid}) had exited")
                continue
            stop_child(child.popen, grace_s=10.0)
            lines.append(f"stopped {child.record.name} (pid {child.record.pid})")
        self.children.clear()
        return lines


def _avatarpipe_bin() -> str:
    """The ``avatarpipe`` command of this environment."""
    beside = Path(sys.executable).parent / "avatarpipe"
    return str(beside) if beside.exists() else "avatarpipe"


def _deployments_ready(api: str) -> bool:
    resp = httpx.post(f"{api}/deployments/filter", json={"limit": 50}, timeout=5)
    names = {d["name"] for d in resp.json()} if resp.status_code == 200 else set()
    return {"nightly", "adhoc"} <= names


def _set_adhoc_budget(api: str, requests_per_minute: float) -> None:
    """Give the ad-hoc deployment's ``target`` the stack's budget.

    Every run sets the shared limit to its target's budget when it starts, so the deployment's
    default target must carry the stack's, not the backend's default.

    Raises:
        AvatarpipeError: The server refused.
    """
    deps = httpx.post(f"{api}/deployments/filter", json={}, timeout=30).json()
    adhoc = next(d for d in deps if d["name"] == "adhoc")
    params = dict(adhoc["parameters"])
    params["target"] = {**params.get("target", {}), "requests_per_minute": requests_per_minute}
    resp = httpx.patch(f"{api}/deployments/{adhoc['id']}", json={"parameters": params}, timeout=30)
    if resp.status_code >= 300:
        raise AvatarpipeError(f"ad-hoc deployment: {resp.status_code} {resp.text[:300]}")


def _ensure_queue(api: str, name: str) -> None:
    """Create the work queue ``name`` in the pool unless it exists.

    Raises:
        AvatarpipeError: The server refused.
    """
    resp = httpx.post(f"{api}/work_pools/{POOL}/queues", json={"name": name}, timeout=30)
    if resp.status_code not in (201, 409):
        raise AvatarpipeError(f"work queue {name}: {resp.status_code} {resp.text[:300]}")


def _online_workers(api: str) -> set[str]:
    resp = httpx.post(f"{api}/work_pools/{POOL}/workers/filter", json={}, timeout=5)
    if resp.status_code != 200:
        return set()
    return {w["name"] for w in resp.json() if w.get("status") == "ONLINE"}


def _seed() -> Path:
    """The emulator's resource file: what the stack's Speech emulator holds (see cli.seed).

    Raises:
        ConfigError: ``AVATARPIPE_EMULATOR_RESOURCE`` names a missing file, or a setting is invalid.
    """
    from avatarpipe.cli.seed import resource_file
    from avatarpipe.settings import load_settings

    return resource_file(load_settings())


# -- the supervisor and the commands -----------------------------------------------------------


def _read_state(state_dir: Path) -> dict[str, Any]:
    path = state_dir / STATE_FILE
    if not path.is_file():
        return {}
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StorageError(f"{path} is unreadable ({exc}); remove it after checking `ps`") from None
    return data


def _recorded(state: dict[str, Any]) -> list[StackProcess]:
    try:
        return [StackProcess(**p) for p in state.get("processes", [])]
    except TypeError as exc:
        raise StorageError(f"the stack's state file is not one of ours ({exc})") from None


def _write_state(
    state_dir: Path, procs: list[StackProcess], urls: dict[str, str], **extra: Any
) -> None:
    write_json_atomic(
        state_dir / STATE_FILE,
        {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "urls": urls,
            "processes": [asdict(p) for p in procs],
            **extra,
        },
    )


class _Stopped(Exception):
    """SIGTERM/SIGHUP reached the supervisor."""


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def supervise(config: StackConfig) -> None:
    """Run the stack in this process until SIGTERM or Ctrl-C, recording it in the state file.

    Raises:
        ConfigError: The stack is already up, or a tool is missing.
        AvatarpipeError: A component did not start.
    """
    state_dir = config.state_dir.resolve()
    if any(_alive(p) for p in _recorded(_read_state(state_dir)) if p.pid != os.getpid()):
        raise ConfigError(
            f"the stack in {state_dir} is already up: `make down` (avatarpipe stack down) first"
        )
    me = StackProcess("supervisor", os.getpid(), _start_ticks(os.getpid()), "")
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGHUP, _raise_stopped)
    stack = Stack(config)
    try:
        with stack:
            took = time.monotonic() - (stack.started_s or time.monotonic())
            _write_state(
                state_dir, [me, *stack.processes], stack.urls, ready=True, startup_s=round(took, 1)
            )
            while True:
                time.sleep(1.0)
    except (_Stopped, KeyboardInterrupt):
        pass
    finally:
        (state_dir / STATE_FILE).unlink(missing_ok=True)


def up(config: StackConfig) -> dict[str, Any]:
    """Start the stack's supervisor in the background and wait until the stack is ready.

    Args:
        config: What to start.

    Returns:
        The state: ``urls``, ``processes`` and ``startup_s``.

    Raises:
        ConfigError: The stack is already up.
        AvatarpipeError: It did not start (the supervisor's log says why; nothing is left).
    """
    state_dir = config.state_dir.resolve()
    running = [p for p in _recorded(_read_state(state_dir)) if _alive(p)]
    if running:
        raise ConfigError(
            f"the stack is already up ({', '.join(p.name for p in running)}): "
            "`make down` (avatarpipe stack down) first"
        )
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    write_json_atomic(state_dir / CONFIG_FILE, config.to_json())
    log = state_dir / "logs" / "supervisor.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "avatarpipe.cli.stack", "supervise", str(state_dir)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # it outlives `up`; its children die with it
        )
    deadline = time.monotonic() + config.timeout_s * 3
    while time.monotonic() < deadline:
        state = _read_state(state_dir)
        if state.get("ready"):
            return state
        if proc.poll() is not None:
            raise AvatarpipeError(
                f"the stack did not start; its log ({log}):\n{_tail(str(log), 25)}"
            )
        time.sleep(0.3)
    _stop_recorded(StackProcess("supervisor", proc.pid, _start_ticks(proc.pid), str(log)))
    raise AvatarpipeError(f"the stack did not start in time; its log ({log}):\n{_tail(str(log))}")


def down(state_dir: Path = Path(".stack")) -> list[str]:
    """Stop exactly the processes the state file records (the supervisor first) and forget them.

    Args:
        state_dir: The folder ``up`` used.

    Returns:
        One line per process.

    Raises:
        StorageError: The state file is unreadable.
    """
    state_dir = state_dir.resolve()
    procs = _recorded(_read_state(state_dir))
    alive = {p.pid: _alive(p) for p in procs}
    lines = []
    for proc in procs:  # the supervisor first: it stops its children itself
        if not alive[proc.pid]:
            lines.append(f"{proc.name} (pid {proc.pid}) was not running")
        elif proc.name == "supervisor" or not _alive(proc):
            _stop_recorded(proc, timeout_s=60.0)
            lines.append(f"stopped {proc.name} (pid {proc.pid})")
        else:  # left behind by a supervisor that is gone
            lines.append(_stop_recorded(proc, timeout_s=5.0))
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return lines


def status(state_dir: Path = Path(".stack")) -> list[tuple[StackProcess, bool]]:
    """The recorded processes and whether each still runs.

    Raises:
        StorageError: The state file is unreadable.
    """
    return [(p, _alive(p)) for p in _recorded(_read_state(state_dir.resolve()))]


StateOpt = Annotated[Path, typer.Option("--state-dir", help="State, data and logs folder.")]


@app.command("up")
def _up_cmd(
    state_dir: StateOpt = Path(".stack"),
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Run a process work pool with this many Prefect workers (each its own folder "
            "under <state-dir>/workers/) instead of one `avatarpipe serve` process.",
        ),
    ] = 0,
    postgres: Annotated[
        bool, typer.Option("--postgres", help="Prefect server on PostgreSQL (else SQLite).")
    ] = False,
    postgres_data: Annotated[
        Path | None,
        typer.Option(help="PostgreSQL's data folder (default <state-dir>/postgres)."),
    ] = None,
    worker_limit: Annotated[int, typer.Option(min=1, help="Flow runs per worker at once.")] = 4,
    worker_poll: Annotated[
        float, typer.Option(min=0.5, help="Seconds between a worker's polls.")
    ] = 5.0,
    crash_after: Annotated[
        int,
        typer.Option(
            min=HEARTBEAT_S + 15,
            help="Seconds without a heartbeat before a flow run counts as crashed and is rerun.",
        ),
    ] = 90,
    requests_per_minute: Annotated[
        float | None,
        typer.Option(help="The shared request budget (default: AVATARPIPE_REQUESTS_PER_MINUTE)."),
    ] = None,
    scripts: Annotated[
        str,
        typer.Option(
            help="Nightly source of the served shape: a folder or blob:<prefix> (workers use "
            "prefect.yaml's).",
            envvar="AVATARPIPE_NIGHTLY_SOURCE",
        ),
    ] = "scripts",
    ui_port: Annotated[int, typer.Option(help="Prefect UI/API port (0: any free).")] = 4200,
    emulator_port: Annotated[int, typer.Option(help="Speech emulator port.")] = 8765,
    azurite_port: Annotated[int, typer.Option(help="Azurite blob port.")] = 10000,
    renderer: Annotated[str, typer.Option(help="Emulator renderer: real or placeholder.")] = "real",
    time_scale: Annotated[float, typer.Option(help="Emulator render-time scale.")] = 0.05,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Stay attached; Ctrl-C stops everything.")
    ] = False,
) -> None:
    """Start the local stack in the background and print the Prefect UI's URL.

    `avatarpipe stack up --workers 3 --postgres` is the production shape on one machine:
    PostgreSQL, a Prefect server on it, a process work pool and three workers sharing only the
    Prefect API, the Speech endpoint and the blob container.
    """
    config = StackConfig(
        state_dir=state_dir,
        scripts=scripts,
        ui_port=ui_port,
        emulator_port=emulator_port,
        azurite_port=azurite_port,
        renderer=renderer,
        time_scale=time_scale,
        workers=workers,
        postgres=postgres,
        postgres_data=postgres_data,
        worker_limit=worker_limit,
        worker_poll_s=worker_poll,
        crash_after_s=crash_after,
        requests_per_minute=requests_per_minute,
    )
    try:
        if foreground:
            supervise(config)
            return
        state = up(config)
    except AvatarpipeError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(exc.exit_code) from None
    urls = state["urls"]
    typer.echo(f"Speech emulator: {urls['emulator']}")
    typer.echo(f"Azurite (blob):  {urls['azurite']}")
    if "postgres" in urls:
        typer.echo(f"PostgreSQL:      {urls['postgres']}")
    typer.echo(f"Prefect API:     {urls['api']}")
    if workers:
        typer.echo(
            f"work pool {POOL}: {workers} worker(s) in {state_dir}/workers/, deployments "
            "nightly-scripts/nightly and script-to-video/adhoc from prefect.yaml"
        )
    else:
        typer.echo(
            f"serving nightly-scripts/nightly (02:00 UTC, {scripts}) and script-to-video/adhoc"
        )
    typer.echo(
        f"started in {state.get('startup_s', 0):.0f} s; logs: {state_dir}/logs/   stop: make down"
    )
    typer.echo(f"Prefect UI: {urls['ui']}")


@app.command("supervise", hidden=True)
def _supervise_cmd(state_dir: Path) -> None:
    """Run the stack recorded in <state-dir>/config.json in the foreground (used by `up`)."""
    try:
        data = json.loads((state_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        supervise(StackConfig.from_json(data))
    except AvatarpipeError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(exc.exit_code) from None


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
