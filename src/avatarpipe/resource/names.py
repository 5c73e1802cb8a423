"""What a resource holds, said in an error: the names it has and the closest one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["holds"]


def holds(value: str, held: Iterable[str], kind: str) -> str:
    """The part of a message naming what the resource holds instead of ``value``.

    Args:
        value: The name or id that was not found.
        held: What the resource holds of that kind.
        kind: What they are, plural (``custom avatars``).

    Returns:
        ``"this resource holds the custom avatars a, b; did you mean 'a'?"``, or that it holds
        none.
    """
    names = sorted(set(held))
    if not names:
        return f"this resource holds no {kind}"
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
    if not close:  # case, or a dropped character in a long id
        lowered = {name.lower(): name for name in names}
        close = [lowered[m] for m in difflib.get_close_matches(value.lower(), lowered, n=1)]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"this resource holds the {kind} {', '.join(names)}{hint}"
