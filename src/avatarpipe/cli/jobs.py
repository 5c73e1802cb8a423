"""``avatarpipe jobs``: list, show, cancel, delete and prune the service's batch avatar jobs.

Formatting only: the operations are :mod:`avatarpipe.resource.jobs`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from avatarpipe.cli.common import (
    JSON_OPTION,
    fail,
    interactive_settings,
    print_json,
    service_clients,
)
from avatarpipe.cli.display import stdout
from avatarpipe.errors import AvatarpipeError

if TYPE_CHECKING:
    from avatarpipe.resource.jobs import JobAction, JobRow
    from avatarpipe.settings import Settings
    from avatarpipe.speech.batch_avatar import BatchAvatarClient

__all__ = ["app", "print_jobs"]

app = typer.Typer(
    no_args_is_help=True,
    help=(
        "List, show, cancel, delete and prune the service's batch jobs.\n\n"
        "The batch avatar API (2024-08-01) offers list (paged), get and delete; it has no cancel "
        "and no update, so `cancel` deletes a job that has not finished. Deleting a job deletes "
        "its results on the service: `delete` and `prune` keep every succeeded job whose videos "
        "are not verified locally (in the result store) unless --force, and print what they did "
        "and what they kept and why."
    ),
)

T = TypeVar("T")
_FORCE = typer.Option(help="Also delete succeeded jobs whose videos are not stored locally.")
_OUT = typer.Option("--out", help="Output root with the result store (default: outputs/).")


def _stored(conf: Settings) -> set[str]:
    from avatarpipe.batch.estimate import stored_job_ids

    return stored_job_ids(conf)


def _on_service(out: Path | None, operation: Callable[[Settings, BatchAvatarClient], T]) -> T:
    """Run ``operation`` with the settings and the batch client; a failure is one error line.

    Raises:
        typer.Exit: The settings, the endpoint or the operation failed (after ``error:``).
    """
    try:
        conf = interactive_settings(out)
        with service_clients(conf) as clients:
            return operation(conf, clients.batch)
    except AvatarpipeError as exc:
        fail(exc)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(0.0, seconds):.0f}s"


def print_jobs(rows: list[JobRow]) -> None:
    """One line per job: id, state, age, billed seconds, cost, stored."""
    stdout.print(
        f"{'job':48} {'status':10} {'age':>5} {'billed s':>8} {'cost':>7}  stored",
        markup=False,
        soft_wrap=True,
    )
    for r in rows:
        billed = "" if r.billed_s is None else str(r.billed_s)
        cost = "" if r.cost_usd is None else f"${r.cost_usd:.2f}"
        stdout.print(
            f"{r.job_id:48} {r.status:10} {_age(r.age_s):>5} {billed:>8} {cost:>7}  "
            f"{'yes' if r.stored else 'no'}",
            markup=False,
            soft_wrap=True,
        )


def _print_actions(actions: list[JobAction], as_json: bool) -> None:
    if as_json:
        print_json([a.to_json() for a in actions])
        return
    for a in actions:
        stdout.print(
            f"{a.action}: {a.job_id} ({a.status}): {a.reason}", markup=False, soft_wrap=True
        )
    deleted = sum(a.action != "kept" for a in actions)
    stdout.print(f"{deleted} deleted, {len(actions) - deleted} kept", markup=False, soft_wrap=True)


@app.command(name="list")
def list_command(
    out: Annotated[Path | None, _OUT] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """List every job of the resource, newest first: state, age, billed seconds, cost, stored.

    Follows the list's pages (100 jobs a request).
    """
    from avatarpipe.batch.estimate import Prices
    from avatarpipe.resource.jobs import list_jobs

    rows = _on_service(
        out,
        lambda conf, api: list_jobs(api, prices=Prices.from_settings(conf), stored=_stored(conf)),
    )
    if as_json:
        print_json([r.to_json() for r in rows])
        return
    print_jobs(rows)
    stdout.print(f"{len(rows)} job(s)", markup=False, soft_wrap=True)


@app.command()
def show(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    out: Annotated[Path | None, _OUT] = None,
) -> None:
    """Show one job as JSON: state, times, billed seconds, cost, error, stored locally."""
    from avatarpipe.batch.estimate import Prices
    from avatarpipe.resource.jobs import job_row

    def shown(conf: Settings, api: BatchAvatarClient) -> dict[str, Any]:
        view = api.get_synthesis(job_id)
        row = job_row(view, prices=Prices.from_settings(conf), stored=_stored(conf))
        return {**row.to_json(), "last_action": _iso(view)}

    print_json(_on_service(out, shown))


def _iso(view: object) -> str | None:
    when = getattr(view, "last_action_date_time", None)
    return when.isoformat() if when is not None else None


@app.command()
def cancel(
    job_id: Annotated[str, typer.Argument(help="A job that is NotStarted or Running.")],
    out: Annotated[Path | None, _OUT] = None,
) -> None:
    """Cancel a job that has not finished (the API has no cancel: this deletes it)."""
    from avatarpipe.resource.jobs import cancel_job

    action = _on_service(out, lambda _conf, api: cancel_job(api, job_id))
    _print_actions([action], False)


@app.command()
def delete(
    job_ids: Annotated[list[str], typer.Argument(help="The jobs to delete.")],
    force: Annotated[bool, _FORCE] = False,
    out: Annotated[Path | None, _OUT] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Delete finished jobs and their results on the service.

    Keeps jobs in flight (see `cancel`) and succeeded jobs whose videos are not in the result
    store (unless --force).
    """
    from avatarpipe.resource.jobs import delete_jobs

    actions = _on_service(
        out,
        lambda conf, api: delete_jobs(
            api, [api.get_synthesis(j) for j in job_ids], stored=_stored(conf), force=force
        ),
    )
    _print_actions(actions, as_json)


@app.command()
def prune(
    older_than: Annotated[
        str, typer.Option(help="Only jobs created longer ago than this: 7d, 12h, 30m, 2w.")
    ] = "7d",
    force: Annotated[bool, _FORCE] = False,
    out: Annotated[Path | None, _OUT] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Delete the finished jobs older than --older-than (7 days by default).

    Keeps jobs in flight and succeeded jobs whose videos are not in the result store (unless
    --force); prints each job it deleted or kept, and why.
    """
    from avatarpipe.resource.jobs import parse_age, prune_jobs

    try:
        age = parse_age(older_than)
    except AvatarpipeError as exc:
        fail(exc)
    actions = _on_service(
        out, lambda conf, api: prune_jobs(api, age, stored=_stored(conf), force=force)
    )
    _print_actions(actions, as_json)
