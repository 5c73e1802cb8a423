"""``avatarpipe emulator serve``: run the local Speech service emulator in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avatarpipe.emulator.config import EmulatorConfig

__all__ = ["app"]

app = typer.Typer(help="The local Speech service emulator.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """The local Speech service emulator (the same REST API as Azure AI Speech)."""


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind (0 picks a free one).")] = 8765,
    state: Annotated[Path, typer.Option("--state", help="State folder (SQLite + results).")] = Path(
        ".avatarpipe/emulator"
    ),
    seed: Annotated[Path | None, typer.Option(help="YAML seed file.")] = None,
    time_scale: Annotated[
        float, typer.Option(help="Scale of modelled durations (0 = as fast as possible).")
    ] = 1.0,
    key: Annotated[
        str | None,
        typer.Option(
            help="Resource key to require (default: any key is accepted).",
            envvar="AVATARPIPE_EMULATOR_KEY",
        ),
    ] = None,
    renderer: Annotated[str, typer.Option(help="real or placeholder.")] = "real",
) -> None:
    """Serve the emulator until Ctrl-C."""
    from avatarpipe.emulator.server import EmulatorServer
    from avatarpipe.errors import AvatarpipeError

    try:
        config = EmulatorConfig(
            host=host,
            port=port,
            state_dir=state,
            seed=seed,
            time_scale=time_scale,
            key=key,
            renderer=renderer,  # type: ignore[arg-type,unused-ignore]
        )
    except ValueError as exc:
        typer.echo(f"invalid option: {exc}", err=True)
        raise typer.Exit(2) from None
    server = EmulatorServer(config)
    try:
        server.start()
    except (AvatarpipeError, OSError) as exc:
        typer.echo(f"emulator: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Speech emulator listening on {server.url} (state in {state}); Ctrl-C stops it")
    try:
        import time

        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        typer.echo("stopping the emulator")
    finally:
        server.stop()
