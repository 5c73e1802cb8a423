"""The deployments ``avatarpipe serve`` serves (and ``prefect.yaml`` mirrors for work pools).

- ``nightly-scripts/nightly``: the nightly sweep over a folder or ``blob:<prefix>`` on a Cron
  schedule; at most one run at a time (a run that would overlap is cancelled: the next sweep
  picks up whatever it would have rendered).
- ``script-to-video/adhoc``: the main flow without a schedule, for runs started from the UI,
  ``prefect deployment run`` or ``run_deployment`` with parameters; a bounded number at once
  (more are queued).

Every run of both takes its Speech requests from one shared Prefect rate limit (see
``flows/speech.py``), so the request budget holds across all of them. Parameters are plain data
and carry no secrets: keys and connection strings stay in the serving process's environment.
"""

from __future__ import annotations

from typing import Any, cast

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron
from prefect.settings import get_current_settings
from prefect.types.entrypoint import EntrypointType

from flows.nightly import nightly
from flows.script_to_video import script_to_video
from flows.speech import SpeechTarget

__all__ = [
    "ADHOC",
    "DEFAULT_CRON",
    "NIGHTLY",
    "build_deployments",
    "prefect_api_url",
    "serve_deployments",
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
    options: dict[str, Any] = {}
    if out_dir is not None:
        options["out_dir"] = out_dir
    if poll_interval_s is not None:
        options["poll_interval_s"] = poll_interval_s
    nightly_params: dict[str, Any] = {"source": scripts}
    adhoc_params: dict[str, Any] = {}
    if target is not None:
        nightly_params["target"] = target.model_dump(mode="json")
        adhoc_params["target"] = target.model_dump(mode="json")
    if options:
        nightly_params["options"] = dict(options)
        adhoc_params["options"] = dict(options)
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


def prefect_api_url() -> str | None:
    """The Prefect API this process talks to (``PREFECT_API_URL``), or ``None``."""
    url = get_current_settings().api.url
    return str(url) if url else None


def serve_deployments(deployments: list[RunnerDeployment], *, limit: int = 4) -> None:
    """Register the deployments and run their flow runs in this process until interrupted.

    Args:
        deployments: What to serve (see :func:`build_deployments`).
        limit: Most flow runs this process executes at once.
    """
    serve(*deployments, pause_on_shutdown=False, limit=limit)
