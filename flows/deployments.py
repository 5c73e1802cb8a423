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
"""

from __future__ import annotations

from typing import Any, cast

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
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
]

NIGHTLY = "nightly"
ADHOC = "adhoc"
DEFAULT_CRON = "0 2 * * *"
TAGS = ["avatarpipe"]


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
