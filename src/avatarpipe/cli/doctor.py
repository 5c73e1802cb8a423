"""``avatarpipe doctor``: one line per check of the setup, each failure with its fix."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from avatarpipe.cli.display import console, stdout
from avatarpipe.cli.resource import fail, interactive_settings, resource_clients
from avatarpipe.errors import AvatarpipeError
from avatarpipe.settings import Settings

__all__ = ["doctor"]

_MARK = {"ok": "[green]ok  [/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]skip[/]"}


@contextmanager
def _target(conf: Settings) -> Iterator[tuple[str, str]]:
    """The endpoint and backend to check: the configured one, or the embedded emulator."""
    if conf.speech_endpoint:
        yield conf.speech_endpoint, conf.resolved_backend
        return
    from avatarpipe.cli.seed import describe_resource, embedded_emulator, resource_file

    resource = resource_file(conf)
    with embedded_emulator(conf) as url:
        stdout.print(
            f"ok   embedded emulator: no AVATARPIPE_SPEECH_ENDPOINT, so runs use the emulator "
            f"holding {resource} ({describe_resource(resource)})",
            soft_wrap=True,
            markup=False,
        )
        yield url, "emulator"


def doctor(
    scripts: Annotated[
        list[Path] | None,
        typer.Argument(help="Scripts whose avatars and voice endpoints to check."),
    ] = None,
    probe: Annotated[
        bool,
        typer.Option(
            "--probe", help="Azure: prove the scripts' custom avatars with a paid probe job each."
        ),
    ] = False,
) -> None:
    """Check the setup: endpoint, key, api-versions, region, voices, avatars, blob, ffmpeg, Prefect.

    One line per check, each failure with its fix; exit 0 only when every check passes. It
    only reads (nothing is deployed, resumed or paid for), except with --probe on Azure. The
    key is never printed. Without AVATARPIPE_SPEECH_ENDPOINT it checks the embedded emulator's
    resource file, so a misspelt avatar, voice or deployment id shows before any run.
    """
    from avatarpipe.resource.doctor import Check, Probe, diagnose
    from avatarpipe.scripts.jobs import custom_voices
    from avatarpipe.scripts.loader import load_script

    try:
        conf = interactive_settings()
        loaded = [load_script(path) for path in scripts or []]
        with _target(conf) as (endpoint, backend):
            local = conf.model_copy(update={"speech_endpoint": endpoint, "backend": backend})
            first = next((s for s in loaded if s.avatar.customized), None)
            plan = (
                Probe(
                    voice=first.voice.name,
                    custom_voices=custom_voices(first),
                    cache_file=conf.output_dir / ".cache" / "avatar-probes.json",
                )
                if probe and first is not None
                else None
            )
            if plan is not None and backend == "azure":
                from avatarpipe.resource.avatars import PROBE_COST

                console.print(f"--probe: each custom avatar costs {PROBE_COST}", soft_wrap=True)

            def show(check: Check) -> None:
                line = f"{_MARK[check.status]} {escape(check.name)}: {escape(check.detail)}"
                if check.fix and check.status != "ok":
                    line += f" [dim]-> {escape(check.fix)}[/]"
                stdout.print(line, soft_wrap=True)

            with resource_clients(local) as clients:
                results = diagnose(
                    clients,
                    local,
                    endpoint=endpoint,
                    backend=backend,
                    voices=[
                        (s.voice.name, str(s.voice.deployment_id))
                        for s in loaded
                        if s.voice.deployment_id
                    ],
                    characters=[s.avatar.character for s in loaded if s.avatar.customized],
                    probe=plan,
                    prefect_api_url=os.environ.get("PREFECT_API_URL"),
                    progress=show,
                )
    except AvatarpipeError as exc:
        fail(exc)
    failed = [c for c in results if not c.passed]
    if failed:
        console.print(f"{len(failed)} check(s) failed: {', '.join(c.name for c in failed)}")
        raise typer.Exit(1)
    console.print("all checks passed")
