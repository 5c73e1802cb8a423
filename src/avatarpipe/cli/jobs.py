"""``avatarpipe jobs``: list, show, cancel, delete and prune the service's batch avatar jobs.

Formatting only: the operations are :mod:`avatarpipe.resource.jobs`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from avatarpipe.cli.display import stdout
from avatarpipe.errors import AvatarpipeError, ConfigError

if TYPE_CHECKING:
    from avatarpipe.resource.jobs import JobAction, JobRow
    from avatarpipe.settings import Settings
    from avatarpipe.speech.batch_avatar import BatchAvatarClient

__all__ = ["app", "fail_service", "ops_settings", "print_jobs", "service"]

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

_OUT = typer.Option("--out", help="Output root with the result store (default: outputs/).")
_JSON = typer.Option("--json", help="Print JSON (for scripts).")


def ops_settings(out: Path | None) -> Settings:
    """The settings of an operation on the service: an endpoint is required, retries are short.

    Raises:
        ConfigError: A setting is invalid, the endpoint is not set, or Azure lacks credentials.
    """
    from avatarpipe.cli.main import check_azure, run_settings

    conf = run_settings(None, out)
    if not conf.speech_endpoint:
        raise ConfigError(
            "AVATARPIPE_SPEECH_ENDPOINT is not set: jobs live on a Speech resource; set it (for a "
            "local emulator: `avatarpipe emulator serve --port 8765`, then "
            "AVATARPIPE_SPEECH_ENDPOINT=http://127.0.0.1:8765 AVATARPIPE_BACKEND=emulator)"
        )
    check_azure(conf)
    # One-off commands: fail within seconds when the endpoint cannot be reached.
    return conf.model_copy(
        update={
            "max_attempts": min(conf.max_attempts, 3),
            "max_retry_time_s": min(conf.max_retry_time_s, 20.0),
            "connect_timeout_s": min(conf.connect_timeout_s, 10.0),
        }
    )


@contextmanager
def service(conf: Settings) -> Iterator[BatchAvatarClient]:
    """The batch avatar client of the configured resource.

    Raises:
        ConfigError: The auth settings do not fit the endpoint.
    """
    from avatarpipe.connect import open_speech

    with open_speech(conf) as clients:
        yield clients.batch


def _stored(conf: Settings) -> set[str]:
    from avatarpipe.batch.estimate import stored_job_ids

    return stored_job_ids(conf)


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
        stdout.print_json(json.dumps([a.to_json() for a in actions]))
        return
    for a in actions:
        stdout.print(
            f"{a.action}: {a.job_id} ({a.status}): {a.reason}", markup=False, soft_wrap=True
        )
    deleted = sum(a.action != "kept" for a in actions)
    stdout.print(f"{deleted} deleted, {len(actions) - deleted} kept", markup=False, soft_wrap=True)


def fail_service(exc: AvatarpipeError) -> typer.Exit:
    """Print an error as one line (naming the endpoint when it could not be reached)."""
    from avatarpipe.cli.main import fail
    from avatarpipe.errors import ServiceRequestError
    from avatarpipe.settings import load_settings

    if isinstance(exc, ServiceRequestError):
        try:
            endpoint = load_settings().speech_endpoint
        except ConfigError:
            endpoint = None
        exc = ServiceRequestError(
            f"the Speech endpoint {endpoint} could not be reached ({exc.message}); check "
            "AVATARPIPE_SPEECH_ENDPOINT and that the service (or emulator) is up"
        )
    return fail(exc)


_fail = fail_service


@app.command(name="list")
def list_command(
    out: Annotated[Path | None, _OUT] = None,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """List every job of the resource, newest first: state, age, billed seconds, cost, stored.

    Follows the list's pages (100 jobs a request).
    """
    from avatarpipe.batch.estimate import Prices
    from avatarpipe.resource.jobs import list_jobs

    try:
        conf = ops_settings(out)
        with service(conf) as api:
            rows = list_jobs(api, prices=Prices.from_settings(conf), stored=_stored(conf))
    except AvatarpipeError as exc:
        raise _fail(exc) from None
    if as_json:
        stdout.print_json(json.dumps([r.to_json() for r in rows]))
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

    try:
        conf = ops_settings(out)
        with service(conf) as api:
            view = api.get_synthesis(job_id)
    except AvatarpipeError as exc:
        raise _fail(exc) from None
    row = job_row(view, prices=Prices.from_settings(conf), stored=_stored(conf))
    stdout.print_json(json.dumps({**row.to_json(), "last_action": _iso(view)}))


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

    try:
        conf = ops_settings(out)
        with service(conf) as api:
            action = cancel_job(api, job_id)
    except AvatarpipeError as exc:
        raise _fail(exc) from None
    _print_actions([action], False)


@app.command()
def delete(
    job_ids: Annotated[list[str], typer.Argument(help="The jobs to delete.")],
    force: Annotated[
        bool, typer.Option(help="Also delete succeeded jobs whose videos are not stored locally.")
    ] = False,
    out: Annotated[Path | None, _OUT] = None,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """Delete finished jobs and their results on the service.

    Keeps jobs in flight (see `cancel`) and succeeded jobs whose videos are not in the result
    store (unless --force).
    """
    from avatarpipe.resource.jobs import delete_jobs

    try:
        conf = ops_settings(out)
        with service(conf) as api:
            views = [api.get_synthesis(job_id) for job_id in job_ids]
            actions = delete_jobs(api, views, stored=_stored(conf), force=force)
    except AvatarpipeError as exc:
        raise _fail(exc) from None
    _print_actions(actions, as_json)


@app.command()
def prune(
    older_than: Annotated[
        str, typer.Option(help="Only jobs created longer ago than this: 7d, 12h, 30m, 2w.")
    ] = "7d",
    force: Annotated[
        bool, typer.Option(help="Also delete succeeded jobs whose videos are not stored locally.")
    ] = False,
    out: Annotated[Path | None, _OUT] = None,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """Delete the finished jobs older than --older-than (7 days by default).

    Keeps jobs in flight and succeeded jobs whose videos are not in the result store (unless
    --force); prints each job it deleted or kept, and why.
    """
    from avatarpipe.resource.jobs import parse_age, prune_jobs

    try:
        age = parse_age(older_than)
        conf = ops_settings(out)
        with service(conf) as api:
            actions = prune_jobs(api, age, stored=_stored(conf), force=force)
    except AvatarpipeError as exc:
        raise _fail(exc) from None
    _print_actions(actions, as_json)
