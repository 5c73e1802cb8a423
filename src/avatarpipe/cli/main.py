"""The ``avatarpipe`` command: the face of the pipeline.

The ``cli`` package is the only part of the library that reaches into ``flows/``, and it imports
them lazily so that ``validate`` and ``--help`` stay instant.

Exit codes: 0 success, 2 invalid input (script, settings, preset), 1 any other failure. A
failure prints one line saying what went wrong and how to fix it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from avatarpipe.cli.avatars import app as avatars_app
from avatarpipe.cli.common import check_azure, fail, load_scripts, run_settings
from avatarpipe.cli.display import Display, console, quiet_prefect_console, stdout
from avatarpipe.cli.doctor import doctor
from avatarpipe.cli.estimate import estimate as estimate_command
from avatarpipe.cli.interrupts import remove_staging, stop_on_signals
from avatarpipe.cli.jobs import app as jobs_app
from avatarpipe.cli.prefect_server import prefect_api
from avatarpipe.cli.serve import serve
from avatarpipe.cli.stack import app as stack_app
from avatarpipe.cli.status import status as status_command
from avatarpipe.cli.teardown import teardown as teardown_command
from avatarpipe.cli.voices import app as voices_app
from avatarpipe.errors import AvatarpipeError
from avatarpipe.publish.folder import check_output_root
from avatarpipe.settings import Settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="avatarpipe",
    help=(
        "Turn scripts into finished talking-avatar videos with Azure AI Speech batch avatar "
        "synthesis, orchestrated by Prefect.\n\n"
        "Without AVATARPIPE_SPEECH_ENDPOINT everything runs on the embedded emulator: "
        "try `avatarpipe run templates/scripts/product-update.yaml`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def validate(
    script: Annotated[Path, typer.Argument(help="The script YAML (or the template, with --csv).")],
    csv: Annotated[
        Path | None, typer.Option(help="A CSV whose rows fill the script's {{ placeholders }}.")
    ] = None,
) -> None:
    """Check a script without calling any service (exit 2 when it is invalid).

    Every problem names the file, the field (like scenes[3].text) and the reason.
    """
    try:
        scripts = load_scripts(script, csv)
        from avatarpipe.scripts.jobs import scene_inputs

        for item in scripts:
            scene_inputs(item)  # renders and checks the SSML too
    except AvatarpipeError as exc:
        fail(exc)
    for item in scripts:
        stdout.print(
            f"ok: {item.slug}: {len(item.scenes)} scene(s), avatar {item.avatar.character}"
        )


@app.command()
def presets() -> None:
    """List the post-processing presets a script can name in post.preset."""
    from avatarpipe.media.presets import list_presets, load_preset

    for name in list_presets():
        preset = load_preset(name)
        stdout.print(
            f"{name:18} {preset.width}x{preset.height} {preset.video_codec}  {preset.description}"
        )


@contextmanager
def _embedded_emulator(conf: Settings) -> Iterator[str]:
    """Start the emulator in this process, holding the declared resource (its resource file).

    Raises:
        ConfigError: The resource file is missing or invalid.
    """
    from avatarpipe.cli.seed import describe_resource, embedded_emulator, resource_file

    with embedded_emulator(conf) as url:
        resource = resource_file(conf)
        console.print(
            f"No AVATARPIPE_SPEECH_ENDPOINT: using the embedded Speech emulator at {url}, "
            f"holding the resource of {resource.name} ({describe_resource(resource)}).",
            soft_wrap=True,
        )
        yield url


@contextmanager
def _teardown_lines(lines: list[str]) -> Iterator[None]:
    """Collect what the run's teardown reports (stage ``teardown`` of the progress hub)."""
    from avatarpipe import progress

    def note(event: progress.ProgressEvent) -> None:
        if event.stage == "teardown":
            lines.append(event.detail)

    progress.subscribe(note)
    try:
        yield
    finally:
        progress.unsubscribe(note)


@contextmanager
def _endpoint(conf: Settings) -> Iterator[str]:
    """The configured endpoint, or the embedded emulator's for as long as the run lasts."""
    if conf.speech_endpoint:
        yield conf.speech_endpoint
        return
    with _embedded_emulator(conf) as url:
        yield url


@app.command()
def run(
    script: Annotated[Path, typer.Argument(help="The script YAML (or the template, with --csv).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Output root (default: outputs/).")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="emulator or azure (default: azure when AVATARPIPE_SPEECH_ENDPOINT is set)."
        ),
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="A CSV: one video per row.")] = None,
    poll: Annotated[float | None, typer.Option(help="Seconds between status polls.")] = None,
    teardown: Annotated[
        str,
        typer.Option(help="keep, suspend-voice, remove-avatar or both: stop idle hosting costs."),
    ] = "keep",
    post: Annotated[
        bool, typer.Option("--post/--no-post", help="Run the post-processing preset.")
    ] = True,
    delete_jobs: Annotated[
        bool, typer.Option(help="Delete finished jobs on the service after download.")
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            help="Resubmit scenes whose last job the service failed as invalid input, once the "
            "cause outside the script (voice, avatar, resource) is fixed. Transient failures "
            "are always resubmitted."
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print what would be submitted and its cost (see `estimate`); submit nothing.",
        ),
    ] = False,
) -> None:
    """Render a script into finished video(s) under outputs/<slug>/<run-id>/.

    Without an endpoint, the embedded emulator renders the videos locally (no Azure account).
    Videos already verified in the result store are reused (re-checked) and never paid for
    twice, even after --delete-jobs or once the service dropped its jobs; reruns re-attach to
    jobs still rendering, and resubmit jobs that failed for a transient reason.
    AVATARPIPE_MAX_COST_PER_RUN refuses a run estimated above it (exit 2) before any job.
    """
    from avatarpipe.batch.estimate import check_cost_limit
    from avatarpipe.cli.estimate import print_billed, print_estimate, run_estimate

    try:
        conf = run_settings(backend, out, teardown)
        scripts = load_scripts(script, csv)
        check_output_root(conf.output_dir)  # after the scripts: an invalid one writes nothing
        estimate = run_estimate(scripts, conf, delete_jobs=delete_jobs, retry_failed=retry_failed)
        if dry_run:
            print_estimate(estimate, conf.resolved_backend)
            console.print("dry run: nothing was submitted")
            return
        check_cost_limit(estimate, conf.max_cost_per_run)
        check_azure(conf)
        if not conf.speech_endpoint:
            from avatarpipe.cli.seed import resource_file

            resource_file(conf)  # a missing resource file fails before anything starts
    except AvatarpipeError as exc:
        fail(exc)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    display = Display(live=sys.stderr.isatty())
    chosen = conf.resolved_backend
    started = time.time()
    torn_down: list[str] = []  # what --teardown did, printed after the videos
    try:
        with (
            _teardown_lines(torn_down),
            stop_on_signals(
                console, display.interrupted, lambda: remove_staging(conf.output_dir, started)
            ),
            prefect_api(),  # a temporary server the CLI owns when PREFECT_API_URL is unset
            _endpoint(conf) as endpoint,
            display.running(),
            quiet_prefect_console(),
        ):
            from flows.connections import SpeechTarget
            from flows.script_to_video import RunOptions, script_to_video

            target = SpeechTarget(
                endpoint=endpoint, backend=chosen, requests_per_minute=conf.requests_per_minute
            )
            interval = (
                poll
                if poll is not None
                else (1.0 if chosen == "emulator" else conf.poll_interval_s)
            )
            published = script_to_video(
                str(script),
                target,
                RunOptions(
                    out_dir=str(conf.output_dir),
                    poll_interval_s=interval,
                    timeout_s=conf.wait_timeout_s,
                    postprocess=post,
                    teardown=teardown,
                    delete_jobs=delete_jobs,
                    retry_failed=retry_failed,
                ),
                str(csv) if csv else None,
            )
    except AvatarpipeError as exc:
        fail(exc)
    from avatarpipe.publish.review import REVIEW_PAGE, bulk_page_path

    for item in published:
        for video in item.videos:
            stdout.print(f"video: {video}", soft_wrap=True)
        stdout.print(f"manifest: {item.manifest}", soft_wrap=True)
        stdout.print(f"review: {Path(item.folder) / REVIEW_PAGE}", soft_wrap=True)
    if csv is not None and published:
        page = bulk_page_path(conf.output_dir, Path(published[0].folder).name)
        stdout.print(f"review: {page} (every row)", soft_wrap=True)
    for line in torn_down:
        stdout.print(f"teardown: {line}", soft_wrap=True)
    print_billed([Path(item.manifest) for item in published])
    console.print(
        "Watch runs in the Prefect UI: `uv run prefect server start`, then open "
        "http://127.0.0.1:4200 (runs made here are stored in the same Prefect database)."
    )


def _mount_emulator() -> None:
    try:
        from avatarpipe.emulator.cli import app as emulator_app
    except ImportError:  # pragma: no cover - the emulator ships with the package
        return
    app.add_typer(emulator_app, name="emulator", help="Run the local Speech service emulator.")


_mount_emulator()
app.command(name="serve")(serve)
app.add_typer(
    stack_app, name="stack", help="The local stack: `make up`, `make stack`, `make down`."
)
app.add_typer(avatars_app, name="avatars")
app.add_typer(voices_app, name="voices")
app.command(name="teardown")(teardown_command)
app.command(name="doctor")(doctor)
app.command(name="estimate")(estimate_command)
app.command(name="status")(status_command)
app.add_typer(
    jobs_app, name="jobs", help="List, show, cancel, delete and prune the service's batch jobs."
)


def main() -> None:
    """Entry point for ``python -m avatarpipe``."""
    logging.basicConfig(level=logging.WARNING)
    app()
