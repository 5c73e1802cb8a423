"""The OData-like ``filter`` of custom voice lists (``projectId eq 'Jessica' and ...``).

Properties ``projectId``, ``locale`` and ``kind`` take ``eq``/``ne``; ``createdDateTime`` also
``gt``, ``ge``, ``lt`` and ``le``. Clauses are joined with ``and``; string values may be quoted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from avatarpipe.emulator.apierror import ApiError
from avatarpipe.emulator.core import parse_iso

__all__ = ["Predicate", "parse_filter"]

Predicate = Callable[[dict[str, Any]], bool]

_CLAUSE = re.compile(
    r"^\s*(?P<field>projectId|createdDateTime|locale|kind)\s+(?P<op>eq|ne|gt|ge|lt|le)\s+"
    r"(?P<value>'[^']*'|\S+)\s*$"
)


def parse_filter(flt: str) -> list[Predicate]:
    """Parse a filter into one predicate per clause (an item matches when all hold).

    Raises:
        ApiError: 400 ``BadArgument`` for a filter the service does not understand.
    """
    preds = []
    for clause in re.split(r"\s+and\s+", flt.strip()):
        m = _CLAUSE.match(clause)
        if not m:
            raise ApiError(400, "BadArgument", f"The filter '{flt}' is invalid.", target="filter")
        fld, op, value = m["field"], m["op"], m["value"].strip("'")
        if fld != "createdDateTime" and op not in ("eq", "ne"):
            raise ApiError(
                400,
                "BadArgument",
                f"The operator '{op}' is not supported for {fld}.",
                target="filter",
            )
        preds.append(_predicate(fld, op, value, flt))
    return preds


def _predicate(fld: str, op: str, value: str, flt: str) -> Predicate:
    if fld == "createdDateTime":
        try:
            ref = parse_iso(value)
        except ValueError:
            raise ApiError(
                400, "BadArgument", f"The filter '{flt}' has an invalid date.", target="filter"
            ) from None
        ops: dict[str, Callable[[float], bool]] = {
            "eq": lambda a: a == ref,
            "ne": lambda a: a != ref,
            "gt": lambda a: a > ref,
            "ge": lambda a: a >= ref,
            "lt": lambda a: a < ref,
            "le": lambda a: a <= ref,
        }
        test = ops[op]
        return lambda item: test(parse_iso(str(item.get("createdDateTime"))))

    def get(item: dict[str, Any]) -> str:
        if fld == "kind" and "kind" not in item:
            return str((item.get("properties") or {}).get("kind", ""))
        return str(item.get(fld, ""))

    if op == "eq":
        return lambda item: get(item).lower() == value.lower()
    return lambda item: get(item).lower() != value.lower()
