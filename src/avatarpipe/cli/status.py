"""``avatarpipe status``: the recent runs and their jobs, what is in flight, what failed.

Formatting only: the report is :mod:`avatarpipe.resource.status`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from avatarpipe.cli.display import console, stdout
from avatarpipe.errors import AvatarpipeError

__all__ = ["status"]


def status(
    out: Annotated[
        Path | None, typer.Option("--out", help="Output root (default: outputs/).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many recent runs to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")] = False,
) -> None:
    """Show the recent runs and their jobs (state, age, billed seconds, cost), in flight, failed.

    Runs come from the run folders' manifests under the output root; the jobs' state from the
    service (AVATARPIPE_SPEECH_ENDPOINT; without it, the runs only) and the result store.
    """
    from avatarpipe.batch.estimate import Prices, stored_job_ids
    from avatarpipe.cli.jobs import fail_service, ops_settings, print_jobs, service
    from avatarpipe.cli.main import run_settings
    from avatarpipe.resource.jobs import list_jobs
    from avatarpipe.resource.status import recent_runs, status_report

    try:
        conf = run_settings(None, out)
        runs = recent_runs(conf.output_dir, limit=limit)
        stored = stored_job_ids(conf)
        rows = []
        if conf.speech_endpoint:
            conf = ops_settings(out)
            with service(conf) as api:
                rows = list_jobs(api, prices=Prices.from_settings(conf), stored=stored)
    except AvatarpipeError as exc:
        raise fail_service(exc) from None
    report = status_report(runs, rows, stored=len(stored), endpoint=conf.speech_endpoint)
    if as_json:
        stdout.print_json(json.dumps(report.to_json()))
        return
    if not conf.speech_endpoint:
        console.print("AVATARPIPE_SPEECH_ENDPOINT is not set: showing local runs only.")
    stdout.print(f"runs under {conf.output_dir} ({len(runs)} shown):", markup=False, soft_wrap=True)
    for run in runs:
        cost = "" if run.cost_usd is None else f" ${run.cost_usd:.2f}"
        est = ""
        if run.estimated_s is not None and run.estimated_cost_usd is not None:
            est = f" (estimated {run.estimated_s:.1f} s ${run.estimated_cost_usd:.2f})"
        stdout.print(
            f"  {run.slug}/{run.run_id}: {len(run.job_ids)} job(s), billed {run.billed_s:g} s"
            f"{cost}{est}",
            markup=False,
            soft_wrap=True,
        )
        for row in report.run_jobs(run):
            billed = row.get("billed_s")
            stdout.print(
                f"    {row['job_id']}: {row['status']}"
                + (f", billed {billed} s" if billed is not None else ""),
                markup=False,
                soft_wrap=True,
            )
    if conf.speech_endpoint:
        summary = report.to_json()
        stdout.print(
            f"service: {len(rows)} job(s), {len(report.in_flight)} in flight, "
            f"{len(report.failed)} failed; {summary['billed_s']} s billed "
            f"(${summary['cost_usd']:.2f}); "
            f"{len(stored)} stored locally",
            markup=False,
            soft_wrap=True,
        )
        if report.in_flight:
            stdout.print("in flight:", markup=False, soft_wrap=True)
            print_jobs(report.in_flight)
        if report.failed:
            stdout.print("failed:", markup=False, soft_wrap=True)
            for failed in report.failed:
                stdout.print(
                    f"  {failed.job_id}: {failed.error or 'no error given'}",
                    markup=False,
                    soft_wrap=True,
                )
