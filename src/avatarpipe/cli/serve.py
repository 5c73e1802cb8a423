"""``avatarpipe serve``: serve the scheduled deployments from this process.

It registers two deployments with the Prefect server named by ``PREFECT_API_URL``: the nightly
sweep (Cron schedule, one run at a time) and the ad-hoc main flow (no schedule), then executes
their runs here until Ctrl-C. Like the rest of :mod:`avatarpipe.cli` it is part of the
command-line face and reaches into ``flows/`` lazily. ``python -m avatarpipe.cli.serve`` runs it
on its own.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from avatarpipe.errors import AvatarpipeError, ConfigError
from avatarpipe.settings import load_settings

__all__ = ["serve"]

console = Console(stderr=True, highlight=False)


def prefect_api_url() -> str | None:
    """The Prefect API this process talks to (``PREFECT_API_URL``), or ``None``."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def serve(
    scripts: Annotated[
        str,
        typer.Option(
            help="What the nightly sweep renders: a folder of scripts, or blob:<prefix> in the "
            "configured container.",
            envvar="AVATARPIPE_NIGHTLY_SOURCE",
        ),
    ] = "scripts",
    cron: Annotated[
        str, typer.Option(help="When the nightly sweep runs (cron: minute hour day month dow).")
    ] = "0 2 * * *",
    timezone: Annotated[str, typer.Option(help="Time zone of the schedule (IANA).")] = "UTC",
    limit: Annotated[
        int, typer.Option(min=1, help="Most flow runs executed at once by this process.")
    ] = 4,
    adhoc_limit: Annotated[
        int, typer.Option(min=1, help="Most ad-hoc runs at once (more are queued).")
    ] = 2,
) -> None:
    """Serve the nightly and ad-hoc deployments (needs PREFECT_API_URL: a real Prefect server).

    The nightly sweep renders only new or changed scripts; runs appear in the Prefect UI.

    Raises:
        typer.Exit: 2 when PREFECT_API_URL or the Speech endpoint is missing or a setting is
            invalid.
    """
    try:
        conf = load_settings()
        from flows.connections import target_from_settings
        from flows.deployments import build_deployments

        if not prefect_api_url():
            raise ConfigError(
                "PREFECT_API_URL is not set: serving needs a real Prefect server (schedules never "
                "run on the ephemeral API). Start one with `make up` or `uv run prefect server "
                "start`, then export PREFECT_API_URL=http://127.0.0.1:4200/api"
            )
        target = target_from_settings()
        deployments = build_deployments(
            scripts=scripts,
            cron=cron,
            timezone=timezone,
            target=target,
            out_dir=str(conf.output_dir),
            adhoc_limit=adhoc_limit,
            poll_interval_s=1.0 if target.backend == "emulator" else conf.poll_interval_s,
        )
    except AvatarpipeError as exc:
        console.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except ValueError as exc:  # a malformed cron expression or time zone
        console.print(f"[bold red]error:[/] --cron/--timezone: {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(
        f"serving nightly-scripts/nightly ({cron} {timezone}, source {scripts}) and "
        f"script-to-video/adhoc against {prefect_api_url()}; Ctrl-C stops"
    )
    from prefect import serve as serve_runs

    serve_runs(*deployments, pause_on_shutdown=False, limit=limit)


if __name__ == "__main__":  # pragma: no cover - `python -m avatarpipe.cli.serve`
    typer.run(serve)
