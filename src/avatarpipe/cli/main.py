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
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from avatarpipe.cli.display import Display, console, quiet_prefect_console, stdout
from avatarpipe.cli.interrupts import remove_staging, stop_on_signals
from avatarpipe.cli.prefect_server import prefect_api
from avatarpipe.cli.serve import serve
from avatarpipe.cli.stack import app as stack_app
from avatarpipe.connect import check_auth
from avatarpipe.errors import AvatarpipeError, ConfigError
from avatarpipe.publish.folder import check_output_root
from avatarpipe.settings import Settings, load_settings

if TYPE_CHECKING:
    from avatarpipe.scripts.model import Script

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
_TEARDOWNS = ("keep", "suspend-voice", "remove-avatar", "both")


def _fail(exc: AvatarpipeError) -> typer.Exit:
    console.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    return typer.Exit(exc.exit_code)


def _load(script: Path, csv: Path | None) -> list[Script]:
    from avatarpipe.scripts.loader import load_bulk, load_script

    if csv is not None:
        return load_bulk(csv, script)
    return [load_script(script)]


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
        scripts = _load(script, csv)
        from avatarpipe.scripts.jobs import scene_inputs

        for item in scripts:
            scene_inputs(item)  # renders and checks the SSML too
    except AvatarpipeError as exc:
        raise _fail(exc) from None
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
def _embedded_emulator(conf: Settings, scripts: list[Script]) -> Iterator[str]:
    """Start the emulator in this process, seeded with the scripts' custom avatar and voice.

    Raises:
        ServiceError: The emulator refused the seed.
    """
    from avatarpipe.cli.seed import emulator_seed
    from avatarpipe.connect import EMULATOR_KEY
    from avatarpipe.emulator.config import EmulatorConfig
    from avatarpipe.emulator.server import EmulatorServer
    from avatarpipe.speech.emulator_admin import EmulatorAdminClient

    state = Path(os.environ.get("AVATARPIPE_EMULATOR_STATE", str(conf.output_dir / ".emulator")))
    scale = float(os.environ.get("AVATARPIPE_EMULATOR_TIME_SCALE", "0.02"))
    config = EmulatorConfig(port=0, state_dir=state, time_scale=scale)
    with EmulatorServer(config) as server:
        seed = emulator_seed(scripts)
        with EmulatorAdminClient(server.url, key=EMULATOR_KEY) as admin:
            admin.seed(seed)
        seeded = [a["name"] for a in seed["avatars"]] + [
            m["voiceName"] for m in seed.get("models", [])
        ]
        extra = f" ({', '.join(seeded)} seeded)" if seeded else ""
        console.print(
            "No AVATARPIPE_SPEECH_ENDPOINT: using the embedded Speech emulator at "
            f"{server.url}{extra}."
        )
        yield server.url


@contextmanager
def _endpoint(conf: Settings, scripts: list[Script]) -> Iterator[str]:
    """The configured endpoint, or the embedded emulator's for as long as the run lasts."""
    if conf.speech_endpoint:
        yield conf.speech_endpoint
        return
    with _embedded_emulator(conf, scripts) as url:
        yield url


def _run_settings(backend: str | None, out: Path | None, teardown: str) -> Settings:
    """The settings of a run, with the command line's choices applied and checked.

    Raises:
        ConfigError: An option or a setting is invalid, or Azure lacks its endpoint or key.
    """
    overrides: dict[str, Any] = {}
    if backend is not None:
        if backend not in ("emulator", "azure"):
            raise ConfigError(f"--backend: {backend!r} is not emulator or azure")
        overrides["backend"] = backend
    if out is not None:
        overrides["output_dir"] = out
    conf = load_settings(**overrides)
    if teardown not in _TEARDOWNS:
        raise ConfigError(
            f"--teardown: {teardown!r} is not keep, suspend-voice, remove-avatar or both"
        )
    return conf


def _check_azure(conf: Settings) -> None:
    """Fail early when the Azure backend lacks its endpoint or credentials.

    Raises:
        ConfigError: The endpoint is missing, or the auth cannot work (see ``check_auth``).
    """
    if conf.resolved_backend != "azure":
        return
    if not conf.speech_endpoint:
        raise ConfigError(
            "AVATARPIPE_SPEECH_ENDPOINT is not set: set it to https://<region>.api.cognitive."
            "microsoft.com (or run with --backend emulator)"
        )
    check_auth(conf)


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
) -> None:
    """Render a script into finished video(s) under outputs/<slug>/<run-id>/.

    Without an endpoint, the embedded emulator renders the videos locally (no Azure account).
    Videos already verified in the result store are reused (re-checked) and never paid for
    twice, even after --delete-jobs or once the service dropped its jobs; reruns re-attach to
    jobs still rendering, and resubmit jobs that failed for a transient reason.
    """
    try:
        conf = _run_settings(backend, out, teardown)
        scripts = _load(script, csv)
        check_output_root(conf.output_dir)  # after the scripts: an invalid one writes nothing
        _check_azure(conf)
    except AvatarpipeError as exc:
        raise _fail(exc) from None
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    display = Display(live=sys.stderr.isatty())
    chosen = conf.resolved_backend
    started = time.time()
    try:
        with (
            stop_on_signals(
                console, display.interrupted, lambda: remove_staging(conf.output_dir, started)
            ),
            prefect_api(),  # a temporary server the CLI owns when PREFECT_API_URL is unset
            _endpoint(conf, scripts) as endpoint,
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
        raise _fail(exc) from None
    for item in published:
        for video in item.videos:
            stdout.print(f"video: {video}", soft_wrap=True)
        stdout.print(f"manifest: {item.manifest}", soft_wrap=True)
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


def main() -> None:
    """Entry point for ``python -m avatarpipe``."""
    logging.basicConfig(level=logging.WARNING)
    app()
