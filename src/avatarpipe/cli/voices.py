"""``avatarpipe voices``: the custom voice endpoints of the Speech resource.

The custom voice API is the same on Azure and on the emulator: list the endpoints with the voice
each serves and its state, check one the way a run will (same resource, state, voice name),
suspend one (no longer billed, keeps its id) or resume it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from avatarpipe.cli.display import console, stdout
from avatarpipe.cli.resource import fail, resource_clients
from avatarpipe.errors import AvatarpipeError

if TYPE_CHECKING:
    from avatarpipe.resource.voices import VoiceEndpoint

__all__ = ["app"]

app = typer.Typer(
    help="List, check, suspend and resume the custom voice endpoints of the Speech resource.",
    no_args_is_help=True,
)

IdArg = Annotated[
    str, typer.Argument(help="The endpoint (deployment) id: the script's voice.deployment_id.")
]


def _line(endpoint: VoiceEndpoint) -> str:
    return (
        f"{endpoint.id}  {endpoint.voice_name or '?':28} {endpoint.status:10} {endpoint.note}"
    ).rstrip()


@app.command(name="list")
def list_() -> None:
    """List the custom voice endpoints: id, voice name, state (running ones are billed)."""
    from avatarpipe.resource.voices import list_voice_endpoints

    try:
        with resource_clients() as clients:
            endpoints = list_voice_endpoints(clients.voice)
    except AvatarpipeError as exc:
        fail(exc)
    if not endpoints:
        stdout.print("this resource holds no custom voice endpoints")
    for endpoint in endpoints:
        stdout.print(_line(endpoint), soft_wrap=True)


@app.command()
def check(
    deployment_id: IdArg,
    name: Annotated[
        str | None, typer.Option("--name", help="The voice name the script uses with it.")
    ] = None,
) -> None:
    """Check an endpoint as a run will: in this resource, its state, the voice it serves.

    Read-only: a suspended endpoint is reported (the next run resumes it), not resumed.
    """
    from avatarpipe.resource.voices import check_voice_endpoint

    try:
        with resource_clients() as clients:
            endpoint = check_voice_endpoint(clients.voice, deployment_id, name)
    except AvatarpipeError as exc:
        fail(exc)
    stdout.print(f"ok: {_line(endpoint)}", soft_wrap=True)


@app.command()
def suspend(deployment_id: IdArg) -> None:
    """Suspend an endpoint: no longer billed, keeps its id (a run resumes it, in minutes)."""
    from avatarpipe.resource.voices import suspend_voice_endpoint

    try:
        with resource_clients() as clients:
            endpoint = suspend_voice_endpoint(clients.voice, deployment_id)
    except AvatarpipeError as exc:
        fail(exc)
    console.print("suspending takes a few minutes on Azure; `avatarpipe voices list` shows it")
    stdout.print(f"suspended: {_line(endpoint)}", soft_wrap=True)


@app.command()
def resume(deployment_id: IdArg) -> None:
    """Resume a suspended endpoint (billed again once it runs)."""
    from avatarpipe.resource.voices import resume_voice_endpoint

    try:
        with resource_clients() as clients:
            endpoint = resume_voice_endpoint(clients.voice, deployment_id)
    except AvatarpipeError as exc:
        fail(exc)
    console.print("resuming takes a few minutes on Azure; `avatarpipe voices list` shows it")
    stdout.print(f"resumed: {_line(endpoint)}", soft_wrap=True)
