"""``avatarpipe teardown``: stop paying for idle hosting in the Speech resource."""

from __future__ import annotations

from typing import Annotated

import typer

from avatarpipe.cli.display import stdout
from avatarpipe.cli.resource import fail, resource_clients
from avatarpipe.errors import AvatarpipeError

__all__ = ["teardown"]


def teardown(
    voice: Annotated[
        bool, typer.Option("--voice", help="Suspend every running custom voice endpoint.")
    ] = False,
    avatar: Annotated[
        bool,
        typer.Option("--avatar", help="Remove every custom avatar deployment (Azure: the steps)."),
    ] = False,
) -> None:
    """Stop idle hosting: suspend voice endpoints, remove avatar deployments (default: both).

    Suspended endpoints keep their ids and a run resumes them; removed avatars keep their
    model. Azure has no API for avatar deployments: it prints the Speech Studio steps.
    Prints one line per thing it did.
    """
    from avatarpipe.resource.teardown import stop_idle_hosting

    both = not voice and not avatar
    try:
        with resource_clients() as clients:
            done, todo = stop_idle_hosting(clients, voices=voice or both, avatars=avatar or both)
    except AvatarpipeError as exc:
        fail(exc)
    for line in done:
        stdout.print(line, soft_wrap=True)
    for line in todo:
        stdout.print(f"to do by hand: {line}", soft_wrap=True)
