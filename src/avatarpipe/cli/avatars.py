"""``avatarpipe avatars``: the custom avatars of the Speech resource.

On the emulator they are listed, deployed and removed through its admin API. Azure has no API
for custom avatar deployments: there ``deploy`` and ``remove`` print the Speech Studio steps,
and ``check`` proves an avatar with the smallest probe job, after saying what it costs.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from avatarpipe.cli.display import console, stdout
from avatarpipe.cli.resource import fail, interactive_settings, resource_clients
from avatarpipe.errors import AvatarpipeError, ConfigError

__all__ = ["app"]

app = typer.Typer(
    help="List, deploy, remove and check the custom avatars of the Speech resource.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The custom avatar model name (avatar.character).")]


def _hosting(status: str | None) -> str:
    if status is None:
        return "not deployed (not billed; a run deploys it on the emulator)"
    if status == "Succeeded":
        return "deployed: hosted and billed until removed (`avatarpipe avatars remove`)"
    if status == "Failed":
        return "deployment failed: deploy it again"
    return "deploying"


def _steps(action: str, name: str) -> None:
    from avatarpipe.resource.avatars import studio_steps

    stdout.print(
        f"Azure has no API to {action} custom avatars; in Speech Studio (about a minute):",
        soft_wrap=True,
    )
    for i, step in enumerate(studio_steps("deploy" if action == "deploy" else "remove", name), 1):
        stdout.print(f"  {i}. {step}", soft_wrap=True)


@app.command(name="list")
def list_() -> None:
    """List the custom avatars and whether each is deployed (hosted, and billed).

    On Azure, which has no API to list them, it says where Speech Studio shows them.
    """
    from avatarpipe.resource.avatars import list_emulator_avatars

    try:
        with resource_clients() as clients:
            if clients.admin is None:
                stdout.print(
                    "Azure has no API to list custom avatars: Speech Studio shows them (Custom "
                    "Avatar > your project > Deploy model); `avatarpipe avatars check NAME` "
                    "proves one with a probe job.",
                    soft_wrap=True,
                )
                return
            avatars = list_emulator_avatars(clients.admin)
    except AvatarpipeError as exc:
        fail(exc)
    if not avatars:
        stdout.print("this resource holds no custom avatars")
    for avatar in avatars:
        stdout.print(
            f"{avatar.name:24} {avatar.deployment or '-':10} {_hosting(avatar.deployment)}",
            soft_wrap=True,
        )


@app.command()
def deploy(
    name: NameArg,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the deployment.")] = 600.0,
) -> None:
    """Deploy a custom avatar and wait until it is hosted (Azure: print the Studio steps).

    A deployed avatar is billed for as long as it is hosted; a resource holds at most 10.
    """
    from avatarpipe.resource.avatars import ensure_emulator_avatar

    try:
        with resource_clients() as clients:
            if clients.admin is None:
                _steps("deploy", name)
                return
            console.print(f"deploying custom avatar {name}...")
            ensure_emulator_avatar(clients.admin, name, timeout_s=timeout, poll_interval_s=0.5)
    except AvatarpipeError as exc:
        fail(exc)
    stdout.print(
        f"deployed {name}: hosted and billed until removed (`avatarpipe avatars remove {name}`)",
        soft_wrap=True,
    )


@app.command()
def remove(name: NameArg) -> None:
    """Remove a custom avatar's deployment: its hosting stops being billed, the model stays.

    On Azure it prints the Speech Studio steps.
    """
    from avatarpipe.resource.avatars import remove_emulator_avatar

    try:
        with resource_clients() as clients:
            if clients.admin is None:
                _steps("remove", name)
                return
            removed = remove_emulator_avatar(clients.admin, name)
    except AvatarpipeError as exc:
        fail(exc)
    if removed:
        stdout.print(f"removed the deployment of {name}: no longer billed (the model stays)")
    else:
        stdout.print(f"{name} was not deployed: nothing to remove")


@app.command()
def check(
    name: NameArg,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Azure: run the paid probe without asking.")
    ] = False,
    voice: Annotated[
        str, typer.Option(help="Azure: the voice the probe speaks with.")
    ] = "en-US-AvaMultilingualNeural",
    deployment_id: Annotated[
        str | None, typer.Option(help="Azure: the custom voice endpoint of --voice, if custom.")
    ] = None,
) -> None:
    """Check that a custom avatar exists and can be used (Azure: a paid probe job).

    On the emulator it reads the avatar's state. On Azure, where deployments have no API, it
    submits the smallest job there is (and says what it costs first); a success is remembered
    for 24 hours in <output dir>/.cache/avatar-probes.json.
    """
    from avatarpipe.resource.avatars import PROBE_COST, check_emulator_avatar, probe_azure_avatar

    try:
        conf = interactive_settings()
        with resource_clients(conf) as clients:
            if clients.admin is not None:
                state = check_emulator_avatar(clients.admin, name)
                stdout.print(f"{name}: exists, {_hosting(state.deployment)}", soft_wrap=True)
                return
            console.print(f"The probe of {name} costs {PROBE_COST}.", soft_wrap=True)
            if not yes:
                if not sys.stdin.isatty():
                    raise ConfigError(
                        "avatars check on Azure runs a paid probe job: add --yes to run it"
                    )
                typer.confirm("Run the probe?", abort=True, err=True)
            console.print(f"probing {name} (a job of one second; a few minutes on Azure)...")
            ran = probe_azure_avatar(
                clients.batch,
                endpoint=str(conf.speech_endpoint),
                character=name,
                voice=voice,
                custom_voices={voice: deployment_id} if deployment_id else None,
                cache_file=conf.output_dir / ".cache" / "avatar-probes.json",
                timeout_s=conf.wait_timeout_s,
                poll_interval_s=conf.poll_interval_s,
            )
    except AvatarpipeError as exc:
        fail(exc)
    how = "the probe job succeeded" if ran else "a probe succeeded in the last 24 hours"
    stdout.print(f"{name}: deployed and usable in this resource ({how})", soft_wrap=True)
