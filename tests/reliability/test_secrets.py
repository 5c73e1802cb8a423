"""Secrets never leave the process: after full runs with a known fake key and real SAS tokens,
logs, Prefect runs/logs/artifacts, manifests, every output file and the Prefect database hold
zero occurrences of them.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from azurite_fixture import Azurite
from corpus_tools import run_cli
from flow_emu import VOICE_ID, Emu, cnv_seed

from avatarpipe.speech.batch_avatar import BatchAvatarClient
from avatarpipe.storage.blob import BlobStore

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.azurite]

KEY = "avatarpipe-secret-key-DO-NOT-LEAK-1234567890"

SCRIPT = f"""title: Secrets scan
avatar: {{character: contoso-presenter, customized: true}}
voice: {{name: ContosoNeural, deployment_id: {VOICE_ID}}}
scenes:
  - text: The first scene.
  - text: The second scene.
"""


class SecretSpy:
    """Records every SAS signature the run minted or received (the values to search for)."""

    def __init__(self) -> None:
        self.signatures: set[str] = set()

    def note_url(self, url: str) -> None:
        sig = parse_qs(urlsplit(url).query).get("sig")
        if sig:
            self.signatures.add(sig[0])


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> SecretSpy:
    """Wrap (not replace) the two places SAS URLs pass: minted container SAS and result URLs."""
    record = SecretSpy()
    real_sas = BlobStore.container_sas_url
    real_stream = BatchAvatarClient.stream

    def container_sas_url(self: BlobStore, *args: Any, **kwargs: Any) -> str:
        url = real_sas(self, *args, **kwargs)
        record.note_url(url)
        return url

    def stream(self: BatchAvatarClient, url: str, *args: Any, **kwargs: Any) -> Any:
        record.note_url(url)
        return real_stream(self, url, *args, **kwargs)

    monkeypatch.setattr(BlobStore, "container_sas_url", container_sas_url)
    monkeypatch.setattr(BatchAvatarClient, "stream", stream)
    return record


def _forms(secret: str) -> set[str]:
    """The secret as written, URL-decoded and URL-encoded (a SAS sig is usually %-encoded)."""
    from urllib.parse import quote

    return {secret, unquote(secret), quote(secret, safe=""), quote(unquote(secret), safe="")}


def _files(root: Path) -> Iterator[Path]:
    yield from (p for p in root.rglob("*") if p.is_file())


def _prefect_dump(since_names: set[str]) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    parts: list[str] = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=200)
        mine = [r for r in runs if r.name in since_names or r.parent_task_run_id is not None]
        ids = [r.id for r in mine]
        for run in mine:
            parts.append(run.model_dump_json())
            if run.state is not None:
                parts.append(run.state.model_dump_json())
        if ids:
            parts += [
                t.model_dump_json()
                for t in client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=200
                )
            ]
            parts += [
                log.model_dump_json()
                for log in client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)), limit=200
                )
            ]
        parts += [a.model_dump_json() for a in client.read_artifacts(limit=200)]
        parts += [v.model_dump_json() for v in client.read_variables(limit=200)]
    return "\n".join(parts)


def _database_bytes() -> bytes:
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    url = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    assert url and url.startswith("sqlite"), url
    db = Path(url.split("///", 1)[1])
    assert db.is_file(), db
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_no_key_or_sas_signature_anywhere_after_full_runs(
    make_emu: Any,
    azurite: Azurite,
    spy: SecretSpy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    emu: Emu = make_emu(key=KEY)
    emu.http.headers["Ocp-Apim-Subscription-Key"] = KEY
    emu.seed({**cnv_seed(), "avatars": [{"name": "contoso-presenter", "deployed": False}]})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")
    monkeypatch.setenv("AVATARPIPE_SPEECH_ENDPOINT", emu.url)
    monkeypatch.setenv("AVATARPIPE_BACKEND", "emulator")
    monkeypatch.setenv("AVATARPIPE_SPEECH_KEY", KEY)
    monkeypatch.setenv("AVATARPIPE_REQUESTS_PER_MINUTE", "6000")
    script = tmp_path / "secrets-scan.yaml"
    script.write_text(SCRIPT)

    # 1. Single-input jobs: result URLs signed by the service, downloaded directly.
    direct = tmp_path / "out-direct"
    first = run_cli(["run", str(script), "--out", str(direct), "--poll", "0.2", "--no-post"])
    assert first.exit_code == 0, first.stderr
    # 2. Packed jobs: a container SAS as destinationContainerUrl, results through Blob Storage.
    monkeypatch.setenv("AVATARPIPE_BLOB_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("AVATARPIPE_BLOB_CONTAINER", f"secrets-{uuid.uuid4().hex[:8]}")
    packed = tmp_path / "out-packed"
    second = run_cli(["run", str(script), "--out", str(packed), "--poll", "0.2", "--no-post"])
    assert second.exit_code == 0, second.stderr

    assert spy.signatures, "the runs minted or received no SAS at all: the scan would prove nothing"
    secrets = {"key": {KEY}, "account key": {azurite.account_key}}
    for i, sig in enumerate(sorted(spy.signatures)):
        secrets[f"sas sig {i}"] = _forms(sig)

    haystacks: dict[str, bytes] = {
        "cli output": (first.stdout + first.stderr + second.stdout + second.stderr).encode(),
        "python logs (flows, library, emulator)": caplog.text.encode(),
        "prefect api: runs, states, task runs, logs, artifacts, variables": _prefect_dump(
            {"video-secrets-scan"}
        ).encode(),
        "prefect database": _database_bytes(),
    }
    manifests = list(direct.rglob("manifest.json")) + list(packed.rglob("manifest.json"))
    assert len(manifests) == 2
    for root in (direct, packed):
        for path in _files(root):
            haystacks[f"file {path.relative_to(tmp_path)}"] = path.read_bytes()
    for path in _files(emu.server.config.state_dir):
        if path.suffix in (".log", ".txt", ".json"):
            haystacks[f"emulator file {path.name}"] = path.read_bytes()

    leaks = [
        f"{what} in {where}"
        for what, forms in secrets.items()
        for where, data in haystacks.items()
        if any(form.encode() in data for form in forms if len(form) >= 8)
    ]
    evidence = [
        f"{where}: {line[:300]}"
        for what, forms in secrets.items()
        for where, data in haystacks.items()
        for line in data.decode("utf-8", "replace").splitlines()
        if any(form in line for form in forms if len(form) >= 8)
    ][:5]
    assert leaks == [], (leaks, evidence)
    # The scan is not vacuous: the runs, their endpoint and their logs are in what was searched.
    assert re.search(rb"secrets-scan", haystacks["prefect database"])
    assert emu.url.encode() in haystacks["prefect database"]
    assert (
        b"published"
        in haystacks["prefect api: runs, states, task runs, logs, artifacts, variables"]
    )
    assert len(spy.signatures) >= 2, "expected result-URL signatures and a container SAS"
