"""The repository stands on its own: nothing refers outside it, and the contract is reproducible.

The committed contract (``src/avatarpipe/emulator/contract/``) is the source of truth in a clone.
When a folder of the official specs is given (``SPEECH_SPECS_DIR``, laid out as
``tools/contract.py --from`` expects), the generator must reproduce the committed files byte for
byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avatarpipe.emulator import contract

REPO = Path(__file__).resolve().parents[1]
# Spelled in pieces so that this file does not match its own search.
OUTSIDE = ["../" + "shared", "shared/" + "azure-specs", "shared/" + "DESIGN.md"]


def _tracked_and_new_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [REPO / name for name in out.split("\0") if name and (REPO / name).is_file()]


def _specs_dir() -> Path | None:
    given = os.environ.get("SPEECH_SPECS_DIR")
    return Path(given) if given and (Path(given) / "SOURCES.md").is_file() else None


def test_nothing_refers_outside_the_repository() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    hits = []
    for path in _tracked_and_new_files():
        if path.suffix in (".lock", ".png", ".jpg", ".mp4", ".webm", ".wav", ".sqlite3"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if any(s in line for s in OUTSIDE):
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not hits, "references outside the repository:\n" + "\n".join(hits)


def test_contract_is_committed_and_loads() -> None:
    assert contract.versions("batch-avatar") == (
        "batch-avatar/2024-04-15-preview",
        "batch-avatar/2024-08-01",
    )
    assert contract.api_versions("custom-voice") == ("2026-01-01", "2024-02-01-preview")
    for version, source in contract.upstream().items():
        assert len(source["commit"]) == 40, version
        assert source["repository"] == "Azure/azure-rest-api-specs"
        spec = contract.spec(version)
        assert spec["paths"] and spec["definitions"], version
        assert contract.example_files(version), version
    # Facts without the prose: no annotation survives, a property named "description" does.
    text = (contract.CONTRACT_DIR / "custom-voice/2026-01-01/spec.json").read_text()
    assert '"summary"' not in text and '"title"' not in text
    project = contract.spec("custom-voice/2026-01-01")["definitions"]["Project"]
    assert "description" not in project and "description" in project["properties"]
    assert contract.enum_values("batch-avatar/2024-08-01", "Status") == (
        "NotStarted",
        "Running",
        "Succeeded",
        "Failed",
    )


def test_generator_needs_a_specs_folder(tmp_path: Path) -> None:
    for args in ([], ["--from", str(tmp_path / "missing")], ["--from", str(tmp_path)]):
        run = subprocess.run(
            [sys.executable, str(REPO / "tools" / "contract.py"), *args, "--out", str(tmp_path)],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 2, args
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert run.stderr.startswith("contract.py: "), run.stderr


def test_generator_reproduces_the_committed_contract(tmp_path: Path) -> None:
    specs = _specs_dir()
    if specs is None:
        pytest.skip(
            "SPEECH_SPECS_DIR names no specs folder: the committed contract is the source of truth"
        )
    run = subprocess.run(
        [sys.executable, str(REPO / "tools" / "contract.py"), "--from", str(specs)]
        + ["--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    made = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*.json")}
    committed = {
        p.relative_to(contract.CONTRACT_DIR): p.read_bytes()
        for p in contract.CONTRACT_DIR.rglob("*.json")
    }
    assert sorted(made) == sorted(committed)
    changed = [str(name) for name in made if made[name] != committed[name]]
    assert not changed, f"regenerate with tools/contract.py: {changed}"
    assert json.loads(made[Path("upstream.json")]) == contract.upstream()
