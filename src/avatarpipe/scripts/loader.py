"""Read script files (YAML) and bulk CSVs into validated :class:`Script` models.

Every problem becomes one :class:`~avatarpipe.errors.ScriptError` whose message names the file,
the field path (``scenes[3].text``), the YAML line when known, and the reason::

    talk.yaml: scenes[3].pause_after_ms: Input should be greater than or equal to 0 (line 14)
    talk.yaml: scnes: unknown key 'scnes'; did you mean 'scenes'? (line 5)

Every problem is reported, not only the first (up to :data:`MAX_PROBLEMS_SHOWN`): the first is the
message; when there are more, each further one is attached as a note (``exc.__notes__``, Python
3.11, one full line each, with its line number) and the message ends with ``(and N more)``. The
CLI prints the message and every note, one line each.

A script holding ``{{ placeholder }}`` fields is a bulk template: :func:`load_script` refuses it
(one problem per placeholder field, with its line), since only :func:`load_bulk` can fill it.

Bulk: :func:`load_bulk` fills a template script's string fields with each CSV row (Jinja2
``{{ column }}`` placeholders, sandboxed, unknown placeholders are errors) and returns one
script per row, each with its own slug.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from jinja2 import StrictUndefined, TemplateError, meta
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from avatarpipe.errors import ScriptError
from avatarpipe.scripts.model import RULE_ERROR, RULE_FIELD, Script, slugify
from avatarpipe.scripts.sandbox import BoundedEnvironment, Limits, TemplateLimitError
from avatarpipe.scripts.ssml import render_script_ssml

__all__ = [
    "MAX_BULK_ROWS",
    "MAX_PROBLEMS_SHOWN",
    "MAX_SCRIPT_BYTES",
    "field_path",
    "load_bulk",
    "load_script",
]

MAX_SCRIPT_BYTES = 5_000_000
"""Largest script or CSV file read."""
MAX_BULK_ROWS = 10_000
"""Most rows in one bulk CSV."""
MAX_PROBLEMS_SHOWN = 20
"""Most problems one error lists (the rest are counted)."""
_MAX_YAML_NODES = 200_000
_SUB_LOC_RE = re.compile(r"\[(\d+)\]|([^.\[\]]+)")

Loc = tuple[str | int, ...]


def field_path(loc: Loc) -> str:
    """Format a pydantic error location as a field path.

    Args:
        loc: Like ``("scenes", 3, "text")``.

    Returns:
        Like ``scenes[3].text``.
    """
    out = ""
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out += f".{item}" if out else str(item)
    return out


# --- reading -------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    file = str(path)
    try:
        if path.is_dir():
            raise ScriptError("is a directory, not a file", file=file)
        size = path.stat().st_size
        if size > MAX_SCRIPT_BYTES:
            raise ScriptError(f"file is {size} bytes; the limit is {MAX_SCRIPT_BYTES}", file=file)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ScriptError("file not found", file=file) from None
    except PermissionError:
        raise ScriptError("file is not readable (permission denied)", file=file) from None
    except OSError as exc:
        raise ScriptError(f"cannot read file: {exc.strerror or exc}", file=file) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScriptError(
            f"file is not UTF-8 text (bad byte at offset {exc.start})", file=file
        ) from None


class _Lines:
    """Maps field locations to the YAML line they were written on."""

    def __init__(self) -> None:
        self.by_loc: dict[Loc, int] = {}

    def line(self, loc: Loc) -> int | None:
        for end in range(len(loc), -1, -1):
            found = self.by_loc.get(loc[:end])
            if found is not None:
                return found
        return None


def _walk_nodes(node: yaml.Node, loc: Loc, lines: _Lines, file: str, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise ScriptError("YAML document is too large or nests aliases too deeply", file=file)
    lines.by_loc.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ScriptError(
                    f"duplicate key {key!r} (line {line}; first at line {seen[key]})",
                    file=file,
                    field=field_path((*loc, key)),
                )
            seen[key] = line
            lines.by_loc[(*loc, key)] = line
            _walk_nodes(value_node, (*loc, key), lines, file, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk_nodes(item, (*loc, i), lines, file, budget)


def _parse_yaml(text: str, file: str) -> tuple[dict[str, Any], _Lines]:
    lines = _Lines()
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ScriptError(
                "file is empty; a script is a mapping with title, avatar, ...", file=file
            )
        _walk_nodes(node, (), lines, file, [_MAX_YAML_NODES])
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "syntax error"
        raise ScriptError(f"malformed YAML{where}: {what}", file=file) from None
    except yaml.YAMLError as exc:
        raise ScriptError(f"malformed YAML: {exc}", file=file) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ScriptError(
            f"top level must be a mapping (title: ..., scenes: ...), got {_type_name(data)}",
            file=file,
        )
    return data, lines


# --- pydantic errors to one line -----------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType, list) or get_args(annotation):
        for arg in get_args(annotation):
            found = _find_model(arg)
            if found is not None:
                return found
    return None


def _model_at(loc: Loc) -> type[BaseModel] | None:
    model: type[BaseModel] = Script
    for item in loc:
        if isinstance(item, int):
            continue
        info = model.model_fields.get(item)
        found = _find_model(info.annotation) if info is not None else None
        if found is None:
            return None
        model = found
    return model


def _sub_loc(sub: str) -> Loc:
    return tuple(int(index) if index else name for index, name in _SUB_LOC_RE.findall(sub))


def _describe(error: ErrorDetails) -> tuple[Loc, str]:
    """Return the field location and the one-line reason for one pydantic error."""
    loc: Loc = tuple(error["loc"])
    path = loc
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == RULE_ERROR:
        return loc + _sub_loc(str(ctx.get(RULE_FIELD, ""))), error["msg"]
    if kind == "missing":
        return path, "required field is missing"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(loc[:-1])
        allowed = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
        return path, f"unknown key {key!r}; {hint}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return (
            path,
            f"expected a mapping (key: value lines), got {_type_name(value)} {_short(value)}",
        )
    if kind == "list_type":
        return path, f"expected a list ('- item' lines), got {_type_name(value)} {_short(value)}"
    if kind == "literal_error":
        return path, f"{error['msg']}; got {_short(value)}"
    if kind in ("value_error", "string_too_long", "too_long", "too_short", "string_too_short"):
        return path, error["msg"]
    return path, f"{error['msg']}; got {_type_name(value)} {_short(value)}"


def _problems(
    exc: ValidationError, file: str, lines: _Lines, suffix: str = ""
) -> list[ScriptError]:
    """One :class:`ScriptError` per pydantic error, each with its line when known."""
    problems: list[ScriptError] = []
    # An unknown key usually explains a "missing" one next to it (a typo): report it first.
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    for error in errors:
        loc, message = _describe(error)
        line = lines.line(loc)
        where = f" (line {line})" if line is not None else ""
        problems.append(
            ScriptError(f"{message}{where}{suffix}", file=file, field=field_path(loc) or None)
        )
    return problems


def _combine(problems: list[ScriptError]) -> ScriptError:
    """One error for several problems: the first as the message, the next ones as notes.

    At most :data:`MAX_PROBLEMS_SHOWN` are listed; a last note counts the ones left out.
    """
    first = problems[0]
    if len(problems) == 1:
        return first
    head = first.message
    prefix = "".join(f"{part}: " for part in (first.file, first.field) if part)
    combined = ScriptError(
        f"{head.removeprefix(prefix)} (and {len(problems) - 1} more)",
        file=first.file,
        field=first.field,
    )
    for other in problems[1:MAX_PROBLEMS_SHOWN]:
        combined.add_note(other.message)
    if len(problems) > MAX_PROBLEMS_SHOWN:
        combined.add_note(
            f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more problem(s) not shown; "
            "fix these and validate again"
        )
    return combined


def _validation_error(
    exc: ValidationError, file: str, lines: _Lines, suffix: str = ""
) -> ScriptError:
    return _combine(_problems(exc, file, lines, suffix))


def _validate(
    data: dict[str, Any], file: str, base_dir: Path, lines: _Lines, suffix: str = ""
) -> Script:
    try:
        return Script.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise _validation_error(exc, file, lines, suffix) from None


# --- public --------------------------------------------------------------------------------------


def load_script(path: str | Path, *, check_ssml: bool = True) -> Script:
    """Read, parse and validate one script file.

    Args:
        path: The YAML script file.
        check_ssml: Also render every scene's SSML and check it (catches template problems).

    Returns:
        The validated script; ``script.source`` is the resolved file path.

    Raises:
        ScriptError: The file is unreadable, not YAML, not a mapping, or fails validation; the
            message names the file, the field path and the reason.
        ConfigError: ``check_ssml`` is set and the ``templates/`` directory cannot be found.
    """
    path = Path(path)
    file = str(path)
    data, lines = _parse_yaml(_read_text(path), file)
    unfilled = _unfilled(data, (), file, lines)
    if unfilled:
        raise _combine(unfilled)
    script = _validate(data, file, path.resolve().parent, lines).with_source(path.resolve())
    if check_ssml:
        render_script_ssml(script)
    return script


def _unfilled(value: Any, loc: Loc, file: str, lines: _Lines) -> list[ScriptError]:
    """The fields of a bulk template that hold ``{{ placeholders }}`` (nothing fills them here)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _unfilled(v, (*loc, str(k)), file, lines)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _unfilled(v, (*loc, i), file, lines)]
    if not isinstance(value, str) or not any(t in value for t in ("{{", "{%")):
        return []
    try:
        names = sorted(meta.find_undeclared_variables(_BULK_ENV.parse(value)))
    except TemplateError:
        return []  # not a template: literal braces in the text
    if not names:
        return []
    line = lines.line(loc)
    where = f" (line {line})" if line is not None else ""
    shown = ", ".join("{{ " + name + " }}" for name in names)
    return [
        ScriptError(
            f"{'placeholders' if len(names) > 1 else 'placeholder'} {shown} "
            f"{'are' if len(names) > 1 else 'is'} only filled from a CSV row: this is a bulk "
            "template; "
            f"run it with --csv <rows.csv>{where}",
            file=file,
            field=field_path(loc) or None,
        )
    ]


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, int, dict[str, str]]]]:
    file = str(path)
    text = _read_text(path)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise ScriptError("CSV is empty; the first line must name the columns", file=file)
        columns = [h.strip() for h in header]
        for i, name in enumerate(columns):
            if not name.isidentifier():
                raise ScriptError(
                    f"column {i + 1} header {name!r} is not a usable placeholder name "
                    "(letters, digits, '_'; not starting with a digit)",
                    file=file,
                )
        if len(set(columns)) != len(columns):
            raise ScriptError(f"CSV header repeats a column: {', '.join(columns)}", file=file)
        rows: list[tuple[int, int, dict[str, str]]] = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            number = len(rows) + 1
            if len(cells) != len(columns):
                raise ScriptError(
                    f"row {number} (line {reader.line_num}) has {len(cells)} cells; "
                    f"the header has {len(columns)}",
                    file=file,
                )
            rows.append((number, reader.line_num, dict(zip(columns, cells, strict=True))))
            if len(rows) > MAX_BULK_ROWS:
                raise ScriptError(f"more than {MAX_BULK_ROWS} rows", file=file)
    except csv.Error as exc:
        raise ScriptError(f"malformed CSV: {exc}", file=file) from None
    if not rows:
        raise ScriptError("CSV has a header but no rows", file=file)
    return columns, rows


_BULK_ENV = BoundedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)


def _fill(value: Any, row: dict[str, str], loc: Loc, fail: Any) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, row, (*loc, str(k)), fail) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, row, (*loc, i), fail) for i, v in enumerate(value)]
    if not isinstance(value, str) or not any(t in value for t in ("{{", "{%", "{#")):
        return value
    try:
        parsed = _BULK_ENV.parse(value)
        unknown = sorted(meta.find_undeclared_variables(parsed) - row.keys())
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(row), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            fail(loc, f"unknown placeholder {unknown[0]!r} (CSV columns: {', '.join(row)}){hint}")
        return _BULK_ENV.render_source(value, row, Limits())
    except TemplateLimitError as exc:
        fail(loc, f"placeholder template stopped: {exc}")
    except TemplateError as exc:
        fail(loc, f"placeholder template failed: {type(exc).__name__}: {exc}")
    return value  # pragma: no cover - fail() always raises


def _fill_row(
    data: dict[str, Any],
    row: dict[str, str],
    number: int,
    where: str,
    csv_file: str,
    base_dir: Path,
    lines: _Lines,
) -> Script:
    """Fill the template with one CSV row and validate it.

    Raises:
        ScriptError: A placeholder names no column, or the filled script is invalid.
    """

    def fail(loc: Loc, message: str) -> None:
        raise ScriptError(message + where, file=csv_file, field=field_path(loc) or None)

    filled = _fill(data, row, (), fail)
    if not (isinstance(data.get("slug"), str) and "{" in data["slug"]):
        base = filled.get("slug")
        base = slugify(base) if isinstance(base, str) else slugify(str(filled.get("title", "")))
        suffix = slugify(row["id"]) if row.get("id", "").strip() else f"{number:03d}"
        filled["slug"] = f"{base[: 63 - len(suffix)].rstrip('-')}-{suffix}"
    elif isinstance(filled.get("slug"), str):
        filled["slug"] = slugify(filled["slug"])
    return _validate(filled, csv_file, base_dir, lines, where)


def load_bulk(
    csv_path: str | Path, template_script_path: str | Path, *, check_ssml: bool = True
) -> list[Script]:
    """Make one script per CSV row by filling the template script's ``{{ column }}`` placeholders.

    Placeholders may appear in any string value of the template script. Each script's slug is the
    template's slug (or its rendered title's) plus a suffix: the row's ``id`` column when the CSV
    has one, else the row number (``-001``). A template whose ``slug`` itself holds placeholders
    keeps its rendered slug as-is. Slugs must come out distinct.

    Args:
        csv_path: The CSV file (UTF-8, header line of column names).
        template_script_path: The YAML script with placeholders.
        check_ssml: Also render and check every row's SSML.

    Returns:
        One validated script per non-blank row, in row order; ``source`` is the template script.

    Raises:
        ScriptError: The CSV or template is unreadable or malformed, a placeholder names no
            column, or a filled row fails validation; the message names the CSV file, the row
            and the field.
        ConfigError: ``check_ssml`` is set and the ``templates/`` directory cannot be found.
    """
    csv_path, template_path = Path(csv_path), Path(template_script_path)
    csv_file = str(csv_path)
    template_file = str(template_path)
    data, lines = _parse_yaml(_read_text(template_path), template_file)
    _columns, rows = _read_csv(csv_path)
    base_dir = template_path.resolve().parent
    scripts: list[Script] = []
    problems: list[ScriptError] = []
    seen: dict[str, int] = {}
    for number, line_num, row in rows:
        where = f" (row {number}, line {line_num}; template {template_path.name})"
        try:
            script = _fill_row(data, row, number, where, csv_file, base_dir, lines)
            script = script.with_source(template_path.resolve())
            if script.slug in seen:
                raise ScriptError(
                    f"slug {script.slug!r} repeats row {seen[script.slug]}; give rows distinct ids"
                    + where,
                    file=csv_file,
                    field="slug",
                )
            seen[script.slug] = number
            if check_ssml:
                try:
                    render_script_ssml(script)
                except ScriptError as exc:
                    wrapped = ScriptError(f"{exc.message}{where}")
                    wrapped.file, wrapped.field = csv_file, exc.field
                    raise wrapped from None
        except ScriptError as exc:  # every row is checked: all problems are listed at once
            problems.extend([exc, *(ScriptError(note) for note in getattr(exc, "__notes__", []))])
            if len(problems) > MAX_PROBLEMS_SHOWN:
                break
            continue
        scripts.append(script)
    if problems:
        raise _combine(problems)
    return scripts
