"""``avatarpipe estimate`` (and ``run --dry-run``): what a run would submit and cost.

Formatting only: the estimate itself is :mod:`avatarpipe.batch.estimate`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from avatarpipe.cli.display import console, stdout
from avatarpipe.errors import AvatarpipeError

if TYPE_CHECKING:
    from avatarpipe.batch.estimate import RunEstimate
    from avatarpipe.scripts.model import Script
    from avatarpipe.settings import Settings

__all__ = ["estimate", "print_billed", "print_estimate", "run_estimate"]


def run_estimate(
    scripts: list[Script], conf: Settings, *, delete_jobs: bool, retry_failed: bool = False
) -> RunEstimate:
    """The estimate of a run over ``scripts`` with these settings.

    Raises:
        ConfigError: A blob setting is malformed.
        ScriptError: A scene's SSML does not render.
    """
    from avatarpipe.batch.estimate import estimate_from_settings

    return estimate_from_settings(scripts, conf, delete_jobs=delete_jobs, retry_failed=retry_failed)


def print_estimate(est: RunEstimate, backend: str) -> None:
    """Print an estimate: one line per job, then the totals, hosting and requests."""
    p = est.prices
    stdout.print(
        f"estimate: {est.label} ({backend}; prices in USD: standard avatar "
        f"${p.standard_avatar_per_minute:.2f}/min, "
        f"custom avatar ${p.custom_avatar_per_minute:.2f}/min)",
        markup=False,
        soft_wrap=True,
    )
    stdout.print(
        f"{'job':48} {'videos':>6} {'chars':>6} {'video s':>8} {'billed s':>8} {'cost':>8}",
        markup=False,
        soft_wrap=True,
    )
    for job in est.jobs:
        cost = f"${job.cost_usd:.2f}" if job.submitted else job.note
        stdout.print(
            f"{job.job_id:48} {len(job.keys):>6} {job.characters:>6} {job.video_s:>8.1f} "
            f"{job.billed_s:>8.1f} {cost:>8}",
            markup=False,
            soft_wrap=True,
        )
    stored = sum(j.stored for j in est.jobs)
    stdout.print(
        f"total: {len(est.to_submit)} job(s) to submit, {stored} already in the result store "
        f"(cost nothing); {est.video_s:.1f} s of video, {est.billed_s:.0f} billed s, "
        f"cost ${est.cost_usd:.2f}",
        markup=False,
        soft_wrap=True,
    )
    if est.hosting_per_hour_usd:
        stdout.print(
            f"hosting: ${est.hosting_per_hour_usd:.2f}/h for the custom avatar and voice while "
            "they stay deployed, billed apart from runs (stop it with --teardown)",
            markup=False,
            soft_wrap=True,
        )
    r = est.requests
    stdout.print(
        f"requests: at least {sum(r.values())} (lookup {r['lookup']}, create {r['create']}, "
        f"poll {r['poll']}+, delete {r['delete']}): {est.budget_wall_s:.0f} s at "
        f"{est.requests_per_minute:g} requests/min",
        markup=False,
        soft_wrap=True,
    )


def print_billed(manifests: list[Path]) -> None:
    """After a run: each script's billed seconds and cost against the estimate (manifests)."""
    for path in manifests:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        billing = data.get("billing") or {}
        if "estimated_seconds" not in billing:
            continue
        stdout.print(
            f"billed: {data.get('slug')}: {billing['avatar_seconds']} s "
            f"(${billing['cost_usd']:.2f}); estimated {billing['estimated_seconds']:.1f} s "
            f"(${billing['estimated_cost_usd']:.2f})",
            markup=False,
            soft_wrap=True,
        )


def estimate(
    script: Annotated[Path, typer.Argument(help="The script YAML (or the template, with --csv).")],
    csv: Annotated[Path | None, typer.Option(help="A CSV: one video per row.")] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output root with the result store (default: outputs/)."),
    ] = None,
    delete_jobs: Annotated[
        bool, typer.Option(help="Count the deletes of `run --delete-jobs`.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON.")] = False,
) -> None:
    """Estimate what a run would submit and cost, without calling any service.

    Plans exactly as `avatarpipe run` does (the same job ids), then prices each job: video
    seconds from the text (words, speaking rate, pauses), billed at AVATARPIPE_PRICE_*
    (USD a minute, standard or custom avatar). Jobs already in the result store cost nothing.
    Also the requests the run needs and the time the request budget takes for them.
    AVATARPIPE_MAX_COST_PER_RUN makes `run` refuse a run estimated above it.
    """
    from avatarpipe.cli.main import fail, load_scripts, run_settings

    try:
        conf = run_settings(None, out)
        scripts = load_scripts(script, csv)
        est = run_estimate(scripts, conf, delete_jobs=delete_jobs)
    except AvatarpipeError as exc:
        raise fail(exc) from None
    if as_json:
        stdout.print_json(json.dumps(est.to_json()))
        return
    print_estimate(est, conf.resolved_backend)
    if conf.max_cost_per_run is not None:
        verdict = "within" if est.cost_usd <= conf.max_cost_per_run else "ABOVE"
        console.print(
            escape(f"AVATARPIPE_MAX_COST_PER_RUN ${conf.max_cost_per_run:.2f}: {verdict} the limit")
        )
