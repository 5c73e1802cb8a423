"""Generate the project's API contract from Microsoft's official OpenAPI specs.

Usage::

    uv run python tools/contract.py --from DIR [--out src/avatarpipe/emulator/contract]

``DIR`` is a folder of specs laid out as ``<api>/<version>/<spec>.json`` plus
``<api>/<version>/examples/*.json`` (``api`` is ``batch-avatar`` or ``custom-voice``), with a
``SOURCES.md`` whose table names, for each ``<api>/<version>/`` folder, its upstream folder in
``Azure/azure-rest-api-specs`` and the spec commit used.

For every version it writes ``<out>/<api>/<version>/spec.json`` (paths, parameters, definitions,
enums, status codes, headers: the facts, without the prose ``description``/``title``/``summary``
annotations; ``x-ms-examples`` reduced to the example file names), copies the example files as
they are (they are data) to ``<out>/<api>/<version>/examples/``, and records the upstream folder
and commit of each version in ``<out>/upstream.json``. The output is deterministic (sorted keys,
two-space indent, one trailing newline): running it again on the same specs changes nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

APIS = ("batch-avatar", "custom-voice")
UPSTREAM_REPOSITORY = "Azure/azure-rest-api-specs"
UPSTREAM_BASE = "specification/cognitiveservices/data-plane/Speech/"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "avatarpipe" / "emulator" / "contract"

# Annotation keys that only carry prose.
PROSE = {"description", "title", "summary", "contact", "externalDocs"}
# Keys whose value maps names (property names, paths, status codes ...) to objects: their own
# keys are data, never annotations, even when a name is ``description``.
NAME_MAPS = {"properties", "definitions", "paths", "responses", "headers", "securityDefinitions"}
_ROW = re.compile(
    r"^\|\s*`(?P<local>[a-z-]+/[0-9a-z-]+)/?`\s*\|\s*`(?P<upstream>[^`]+)`\s*\|"
    r"\s*`(?P<commit>[0-9a-f]{40})`"
)


class ContractError(Exception):
    """The specs folder is missing or not laid out as expected."""


def strip_prose(node: Any, *, names: bool = False) -> Any:
    """Return ``node`` without prose annotations.

    Args:
        node: A part of a spec.
        names: ``node`` is a mapping of names (its keys are kept whatever they are).

    Returns:
        The same structure with ``description``, ``title`` ... removed and ``x-ms-examples``
        reduced to ``{file stem: {"$ref": "./examples/<file>"}}``.
    """
    if isinstance(node, list):
        return [strip_prose(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if names:
            out[key] = strip_prose(value)
        elif key == "x-ms-examples":
            refs = [Path(str(ex["$ref"])).name for ex in value.values()]
            out[key] = {Path(r).stem: {"$ref": f"./examples/{r}"} for r in refs}
        elif key == "parameters" and isinstance(value, dict):
            out[key] = strip_prose(value, names=True)
        elif key in PROSE:
            continue
        else:
            out[key] = strip_prose(value, names=key in NAME_MAPS)
    return out


def dump(data: Any) -> str:
    """Serialise deterministically: sorted keys, two-space indent, a trailing newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def read_sources(src: Path) -> dict[str, dict[str, str]]:
    """Read the upstream folder and spec commit of each version from ``SOURCES.md``.

    Raises:
        ContractError: ``SOURCES.md`` is missing or names no version.
    """
    sources = src / "SOURCES.md"
    if not sources.is_file():
        raise ContractError(f"{src} has no SOURCES.md (the upstream commit of each spec)")
    found: dict[str, dict[str, str]] = {}
    for line in sources.read_text(encoding="utf-8").splitlines():
        m = _ROW.match(line.strip())
        if m:
            found[m["local"]] = {
                "commit": m["commit"],
                "path": UPSTREAM_BASE + m["upstream"].strip("/") + "/",
                "repository": UPSTREAM_REPOSITORY,
            }
    if not found:
        raise ContractError(f"{sources} lists no spec folder with its commit")
    return found


def build(src: Path) -> dict[str, str]:
    """Return the contract files (path relative to the output folder -> text).

    Raises:
        ContractError: The folder is not a specs folder, or a version has no recorded commit.
    """
    if not src.is_dir():
        raise ContractError(f"--from {src}: no such folder")
    sources = read_sources(src)
    files: dict[str, str] = {}
    upstream: dict[str, dict[str, str]] = {}
    for api in APIS:
        for folder in sorted(p for p in (src / api).glob("*") if p.is_dir()):
            version = f"{api}/{folder.name}"
            specs = sorted(folder.glob("*.json"))
            if len(specs) != 1:
                raise ContractError(f"{folder}: expected one spec file, found {len(specs)}")
            if version not in sources:
                raise ContractError(f"{version}: no upstream commit in SOURCES.md")
            spec = json.loads(specs[0].read_text(encoding="utf-8"))
            files[f"{version}/spec.json"] = dump(strip_prose(spec))
            for example in sorted((folder / "examples").glob("*.json")):
                data = json.loads(example.read_text(encoding="utf-8"))
                files[f"{version}/examples/{example.name}"] = dump(data)
            upstream[version] = {**sources[version], "file": specs[0].name}
    if not upstream:
        raise ContractError(f"--from {src}: no {' or '.join(APIS)} spec folders inside")
    files["upstream.json"] = dump(upstream)
    return files


def write(files: dict[str, str], out: Path) -> None:
    """Write ``files`` under ``out``, removing contract JSON files that are no longer made."""
    for api in APIS:
        for old in sorted((out / api).glob("**/*.json")):
            if str(old.relative_to(out)) not in files:
                old.unlink()
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the generator; returns the exit code (2 and one line on stderr for bad arguments)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="src", type=Path, help="the specs folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the contract folder")
    args = parser.parse_args(argv)
    if args.src is None:
        print(
            "contract.py: --from DIR is required (the folder of official specs, with SOURCES.md)",
            file=sys.stderr,
        )
        return 2
    try:
        files = build(args.src)
    except (ContractError, ValueError, OSError) as exc:
        print(f"contract.py: {exc}", file=sys.stderr)
        return 2
    write(files, args.out)
    total = sum(len(t.encode()) for t in files.values())
    print(f"wrote {len(files)} files ({total} bytes) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
