"""The ``avatarpipe`` command: the face of the pipeline.

It is the only library module that reaches into ``flows/``, and it imports them lazily so that
``validate`` and ``--help`` stay instant.

Exit codes: 0 success, 2 invalid input (script, settings, preset), 1 any other failure. A
failure prints one line saying what went wrong and how to fix it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape

from avatarpipe import progress
from avatarpipe.errors import AvatarpipeError, ConfigError
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
console = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)

Backend = Literal["emulator", "azure"]
_USER_CONSOLE_LEVEL = os.environ.get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL")


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


class _Display:
    """Live progress on a TTY, plain lines elsewhere."""

    STAGES = ("submitted", "rendering", "rendered", "downloaded", "postprocessed", "published")

    def __init__(self, live: bool) -> None:
        self.live = live
        self.counts: Counter[str] = Counter()
        self.seen: set[tuple[str, str]] = set()
        self.total = 0
        self.started = time.monotonic()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __call__(self, event: progress.ProgressEvent) -> None:
        if event.stage == "planned" and event.total:
            self.total = event.total
        if (event.stage, event.item) in self.seen:
            return
        self.seen.add((event.stage, event.item))
        self.counts[event.stage] += 1
        if self._progress is not None and event.stage in self._tasks:
            self._progress.update(
                self._tasks[event.stage],
                completed=self.counts[event.stage],
                total=self.total or None,
            )
        elif not self.live and event.stage in (
            "planned",
            "failed",
            "published",
            "postprocessed",
            "info",
        ):
            elapsed = time.monotonic() - self.started
            line = f"[{elapsed:6.1f}s] {event.stage}: {event.item} {event.detail}".rstrip()
            console.print(escape(line), soft_wrap=True)

    @contextmanager
    def running(self) -> Iterator[None]:
        progress.subscribe(self)
        try:
            if self.live:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )

                with Progress(
                    TextColumn("{task.description:>14}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                    transient=False,
                ) as bar:
                    self._progress = bar
                    for stage in ("submitted", "rendering", "downloaded", "postprocessed"):
                        self._tasks[stage] = bar.add_task(
                            stage.replace("postprocessed", "post-processed"), total=None
                        )
                    yield
            else:
                yield
        finally:
            progress.unsubscribe(self)
            self._progress = None


def _seed_for(scripts: list[Script]) -> dict[str, Any]:
    """The emulator seed that makes a script's custom avatar and voice exist (not deployed)."""
    avatars = sorted({s.avatar.character for s in scripts if s.avatar.customized})
    voices = sorted(
        {
            (s.voice.name, str(s.voice.deployment_id), s.voice.effective_locale)
            for s in scripts
            if s.voice.deployment_id
        }
    )
    seed: dict[str, Any] = {"avatars": [{"name": a, "deployed": False} for a in avatars]}
    if voices:
        seed["projects"] = [
            {"id": "avatarpipe-demo", "kind": "ProfessionalVoice", "displayName": "avatarpipe demo"}
        ]
        seed["models"] = [
            {
                "id": f"model-{name.lower()}",
                "voiceName": name,
                "locale": locale,
                "projectId": "avatarpipe-demo",
                "status": "Succeeded",
            }
            for name, _dep, locale in voices
        ]
        seed["endpoints"] = [
            {
                "id": dep,
                "projectId": "avatarpipe-demo",
                "modelId": f"model-{name.lower()}",
                "status": "Succeeded",
                "properties": {"kind": "HighPerformance"},
            }
            for name, dep, _locale in voices
        ]
    return seed


@contextmanager
def _embedded_emulator(conf: Settings, scripts: list[Script]) -> Iterator[str]:
    """Start the emulator in this process, seeded with the scripts' custom avatar and voice."""
    import httpx

    from avatarpipe.emulator.config import EmulatorConfig
    from avatarpipe.emulator.server import EmulatorServer

    state = Path(os.environ.get("AVATARPIPE_EMULATOR_STATE", str(conf.output_dir / ".emulator")))
    scale = float(os.environ.get("AVATARPIPE_EMULATOR_TIME_SCALE", "0.02"))
    config = EmulatorConfig(port=0, state_dir=state, time_scale=scale)
    with EmulatorServer(config) as server:
        seed = _seed_for(scripts)
        resp = httpx.post(
            f"{server.url}/emulator/seed",
            json=seed,
            headers={"Ocp-Apim-Subscription-Key": "local-emulator-key"},
            timeout=30,
        )
        resp.raise_for_status()
        seeded = [a["name"] for a in seed["avatars"]] + [
            m["voiceName"] for m in seed.get("models", [])
        ]
        extra = f" ({', '.join(seeded)} seeded)" if seeded else ""
        console.print(
            "No AVATARPIPE_SPEECH_ENDPOINT: using the embedded Speech emulator at "
            f"{server.url}{extra}."
        )
        yield server.url


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
) -> None:
    """Render a script into finished video(s) under outputs/<slug>/<run-id>/.

    Without an endpoint, the embedded emulator renders the videos locally (no Azure account).
    Reruns re-attach to the service's jobs: the same work is never paid for twice.
    """
    try:
        overrides: dict[str, Any] = {}
        if backend is not None:
            if backend not in ("emulator", "azure"):
                raise ConfigError(f"--backend: {backend!r} is not emulator or azure")
            overrides["backend"] = backend
        if out is not None:
            overrides["output_dir"] = out
        conf = load_settings(**overrides)
        if teardown not in ("keep", "suspend-voice", "remove-avatar", "both"):
            raise ConfigError(
                f"--teardown: {teardown!r} is not keep, suspend-voice, remove-avatar or both"
            )
        scripts = _load(script, csv)
        chosen = conf.resolved_backend
        if chosen == "azure":
            if not conf.speech_endpoint:
                raise ConfigError(
                    "AVATARPIPE_SPEECH_ENDPOINT is not set: set it to https://<region>.api.cognitive."
                    "microsoft.com (or run with --backend emulator)"
                )
            if conf.speech_key is None and conf.speech_token is None:
                raise ConfigError(
                    "AVATARPIPE_SPEECH_KEY is not set: set it to your Speech resource's key"
                )
    except AvatarpipeError as exc:
        raise _fail(exc) from None
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    display = _Display(live=sys.stderr.isatty())
    try:
        with (
            _target(conf, chosen, scripts) as endpoint,
            display.running(),
            _quiet_prefect_console(),
        ):
            from flows.script_to_video import RunOptions, script_to_video
            from flows.speech import SpeechTarget

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
                ),
                str(csv) if csv else None,
            )
    except AvatarpipeError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        console.print("interrupted: rerun the same command to re-attach to the submitted jobs")
        raise typer.Exit(130) from None
    for item in published:
        for video in item.videos:
            stdout.print(f"video: {video}", soft_wrap=True)
        stdout.print(f"manifest: {item.manifest}", soft_wrap=True)
    console.print(
        "Watch runs in the Prefect UI: `uv run prefect server start`, then open "
        "http://127.0.0.1:4200 (runs made here are stored in the same Prefect database)."
    )


@contextmanager
def _quiet_prefect_console() -> Iterator[None]:
    """Keep Prefect's console handler at CRITICAL during a run.

    The CLI shows its own progress and one error line; run logs still reach the Prefect API.
    """
    if _USER_CONSOLE_LEVEL:
        yield  # the user asked for Prefect's own console logs
        return
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [
        logging.getLogger(),
        *(logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)),
    ]
    changed = [
        (handler, handler.level)
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, PrefectConsoleHandler)
    ]
    for handler, _level in changed:
        handler.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for handler, level in changed:
            handler.setLevel(level)


@contextmanager
def _target(conf: Settings, chosen: Backend, scripts: list[Script]) -> Iterator[str]:
    if conf.speech_endpoint:
        yield conf.speech_endpoint
        return
    with _embedded_emulator(conf, scripts) as url:
        yield url


def _mount_emulator() -> None:
    try:
        from avatarpipe.emulator.cli import app as emulator_app
    except ImportError:  # pragma: no cover - the emulator ships with the package
        return
    app.add_typer(emulator_app, name="emulator", help="Run the local Speech service emulator.")


_mount_emulator()


def _mount_serve() -> None:
    from avatarpipe.serve import serve

    app.command(name="serve")(serve)


_mount_serve()


def main() -> None:
    """Entry point for ``python -m avatarpipe``."""
    logging.basicConfig(level=logging.WARNING)
    app()
