"""The deployments ``avatarpipe serve`` serves (and ``prefect.yaml`` mirrors for work pools).

- ``nightly-scripts/nightly``: the nightly sweep over a folder or ``blob:<prefix>`` on a Cron
  schedule; at most one run at a time (a run that would overlap is cancelled: the next sweep
  picks up whatever it would have rendered).
- ``script-to-video/adhoc``: the main flow without a schedule, for runs started from the UI,
  ``prefect deployment run`` or ``run_deployment`` with parameters; a bounded number at once
  (more are queued).

Every run of both takes its Speech requests from one shared Prefect rate limit (see
``flows/connections.py``), so the request budget holds across all of them. Parameters are plain data
and carry no secrets: keys and connection strings stay in the serving process's environment.

For workers (``prefect.yaml`` on a process work pool) two more server-side pieces:
:func:`ensure_process_pool` creates the pool, and :func:`ensure_crash_reruns` the automations
that run a flow run again when its worker died (no heartbeat: ``Crashed``; then back to
``Scheduled`` for another worker, at most twice).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import (
    ConcurrencyLimitConfig,
    ConcurrencyLimitStrategy,
    StateType,
)
from prefect.deployments.runner import RunnerDeployment
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from flows.connections import SpeechTarget
from flows.nightly import nightly
from flows.script_to_video import script_to_video

__all__ = [
    "ADHOC",
    "DEFAULT_CRON",
    "NIGHTLY",
    "build_deployments",
    "crash_automations",
    "ensure_crash_reruns",
    "ensure_process_pool",
]

NIGHTLY = "nightly"
ADHOC = "adhoc"
DEFAULT_CRON = "0 2 * * *"
TAGS = ["avatarpipe"]
RERUNS = 2
"""How many times a crashed flow run is run again."""
_TAGGED = {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.avatarpipe"}


def build_deployments(
    *,
    scripts: str = "scripts",
    cron: str = DEFAULT_CRON,
    timezone: str = "UTC",
    target: SpeechTarget | None = None,
    out_dir: str | None = None,
    adhoc_limit: int = 2,
    poll_interval_s: float | None = None,
) -> list[RunnerDeployment]:
    """The nightly (scheduled) and ad-hoc deployments.

    Args:
        scripts: The nightly source: a folder of scripts or ``blob:<prefix>``.
        cron: When the nightly sweep runs.
        timezone: The Cron schedule's time zone (IANA name).
        target: Baked into both deployments' parameters (default: read from the settings when
            a run starts).
        out_dir: The output root for both (default: ``AVATARPIPE_OUTPUT_DIR`` at run time).
        adhoc_limit: How many ad-hoc runs at once (more wait in the queue).
        poll_interval_s: Seconds between status polls (default: the flows' own).

    Returns:
        ``[nightly, adhoc]``, not yet registered: ``serve(*deployments)`` or ``d.apply()``.
    """
    common: dict[str, Any] = {}  # the parameters both deployments get
    if target is not None:
        common["target"] = target.model_dump(mode="json")
    options = {"out_dir": out_dir, "poll_interval_s": poll_interval_s}
    if any(v is not None for v in options.values()):
        common["options"] = {k: v for k, v in options.items() if v is not None}
    nightly_params = {"source": scripts, **common}
    adhoc_params = dict(common)
    nightly_dep = nightly.to_deployment(
        name=NIGHTLY,
        schedules=[Cron(cron, timezone=timezone, slug="nightly")],
        parameters=nightly_params,
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
        description=f"Render the new or changed scripts of {scripts} ({cron}, {timezone}).",
        tags=TAGS,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    adhoc_dep = script_to_video.to_deployment(
        name=ADHOC,
        parameters=adhoc_params,
        concurrency_limit=ConcurrencyLimitConfig(
            limit=adhoc_limit, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
        ),
        description="Render one script (or a CSV of rows) on demand: set script_path.",
        tags=TAGS,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # Called synchronously, to_deployment returns the deployment (not a coroutine).
    return [cast(RunnerDeployment, nightly_dep), cast(RunnerDeployment, adhoc_dep)]


def ensure_process_pool(name: str) -> None:
    """Create the process work pool ``name`` unless it exists (Prefect's default template)."""
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return
        except ObjectNotFound:
            pass
        client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
        )


def crash_automations(
    crash_after_s: int,
    *,
    crash_name: str = "avatarpipe: a flow run without heartbeats crashed",
    rerun_name: str = "avatarpipe: run a crashed flow run again",
) -> list[Automation]:
    """The two automations that run an avatarpipe flow run again when its worker died.

    A flow run sends a heartbeat every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (30 at
    least). Flow retries never fire for a process that was killed (nothing is left to ask for
    them), so: the first automation marks a run ``Crashed`` when ``crash_after_s`` pass without a
    heartbeat or a final state; the second puts a crashed run of an avatarpipe deployment back to
    ``Scheduled`` while it has run at most ``RERUNS`` times, and any worker picks it up again.

    Args:
        crash_after_s: Seconds of silence that mean the run's worker is gone.
        crash_name: The first automation's name.
        rerun_name: The second automation's name.

    Returns:
        The automations, not yet created.
    """
    silent = EventTrigger(
        after={"prefect.flow-run.heartbeat"},
        expect={
            "prefect.flow-run.heartbeat",
            "prefect.flow-run.Completed",
            "prefect.flow-run.Failed",
            "prefect.flow-run.Cancelled",
            "prefect.flow-run.Crashed",
        },
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related=_TAGGED,
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive,
        threshold=1,
        within=timedelta(seconds=crash_after_s),
    )
    crashed = EventTrigger(
        expect={"prefect.flow-run.Crashed"},
        match={
            "prefect.resource.id": "prefect.flow-run.*",
            "prefect.run-count": [str(n) for n in range(1, RERUNS + 1)],
        },
        match_related=_TAGGED,
        for_each={"prefect.resource.id"},
        posture=Posture.Reactive,
        threshold=1,
    )
    return [
        Automation(
            name=crash_name,
            description=f"No heartbeat for {crash_after_s} s: the run's worker is gone.",
            trigger=silent,
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED,
                    message=f"no heartbeat for {crash_after_s} s: its worker is gone",
                )
            ],
        ),
        Automation(
            name=rerun_name,
            description=f"A crashed avatarpipe run goes back to Scheduled (at most {RERUNS}x).",
            trigger=crashed,
            actions=[
                ChangeFlowRunState(
                    state=StateType.SCHEDULED,
                    name="AwaitingRetry",
                    message="run again after a crash: it re-attaches to its jobs",
                )
            ],
        ),
    ]


def ensure_crash_reruns(
    *, crash_after_s: int, crash_name: str | None = None, rerun_name: str | None = None
) -> None:
    """Create (or replace) the automations of :func:`crash_automations` on the server."""
    names = {k: v for k, v in {"crash_name": crash_name, "rerun_name": rerun_name}.items() if v}
    wanted = crash_automations(crash_after_s, **names)
    with get_client(sync_client=True) as client:
        for automation in wanted:
            for old in client.read_automations_by_name(automation.name):
                client.delete_automation(old.id)
    for automation in wanted:
        automation.create()
