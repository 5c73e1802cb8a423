"""The command-line face of avatarpipe: ``avatarpipe`` (:mod:`.main`), ``serve`` and ``stack``.

These are the entry points, not the library: they are the only modules under ``avatarpipe``
that import ``flows/``. ``app`` is imported on first use, so ``python -m avatarpipe.cli.serve``
and ``python -m avatarpipe.cli.stack`` run their module without loading the whole CLI first.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from avatarpipe.cli.main import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
