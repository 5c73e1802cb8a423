"""The nightly sweep: render only the scripts that are new or changed since their last render.

The source is a folder of script files (``*.yaml``/``*.yml``) or ``blob:<prefix>``: the scripts
(and any assets they reference) under a prefix of the configured container, mirrored to a local
folder first. Each script's content hash (``script_hash``: the validated script, its assets and
its SSML template) is compared with a small JSON index of what was rendered; only new or changed
scripts go through ``script-to-video``, one after the other (all runs share the Speech rate
budget anyway). The index is updated after every successful render, atomically: a local file
(written through a temporary file and renamed) beside the outputs, or one blob in the container
(a blob write is atomic). A failed script keeps its old hash, so the next night retries it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from pydantic import BaseModel, Field

from avatarpipe.errors import AvatarpipeError, ConfigError, OutcomeError, StorageError
from avatarpipe.scripts.loader import load_script
from avatarpipe.scripts.ssml import script_hash
from avatarpipe.storage.blob import BlobStore, store_from_settings
from avatarpipe.storage.local import write_json_atomic
from flows.report import report_nightly
from flows.script_to_video import RunOptions, script_to_video
from flows.speech import SpeechTarget, settings

__all__ = ["NightlyResult", "ScriptIndex", "nightly", "target_from_settings"]

log = logging.getLogger(__name__)

BLOB_SCHEME = "blob:"
INDEX_SCHEMA = "avatarpipe.nightly-index/1"
_SCRIPT_SUFFIXES = (".yaml", ".yml")


class NightlyResult(BaseModel):
    """What a nightly sweep did."""

    source: str
    rendered: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)
    folders: list[str] = Field(default_factory=list)


class ScriptIndex:
    """The JSON index of rendered scripts: script name -> content hash and where it went.

    Args:
        path: A local file (``None`` when the index lives in a blob).
        store: The container holding the index blob.
        blob_name: The index blob's name.
    """

    def __init__(
        self,
        path: Path | None = None,
        store: BlobStore | None = None,
        blob_name: str | None = None,
    ) -> None:
        self.path = path
        self.store = store
        self.blob_name = blob_name
        self.entries: dict[str, dict[str, Any]] = {}

    @property
    def where(self) -> str:
        """Where the index lives, for messages."""
        if self.path is not None:
            return str(self.path)
        return f"blob {self.blob_name}"

    def load(self) -> ScriptIndex:
        """Read the index (an absent index is empty).

        Returns:
            ``self``.

        Raises:
            StorageError: The index exists but is unreadable or not an index.
        """
        text: str | None = None
        if self.path is not None:
            if self.path.is_file():
                text = self.path.read_text(encoding="utf-8")
        elif (
            self.store is not None
            and self.blob_name is not None
            and self.blob_name in self.store.list_names(self.blob_name)
        ):
            text = self.store.read_bytes(self.blob_name).decode("utf-8")
        if text is None:
            self.entries = {}
            return self
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StorageError(f"nightly index {self.where} is not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("schema") != INDEX_SCHEMA:
            raise StorageError(f"nightly index {self.where}: not an {INDEX_SCHEMA} file")
        scripts = data.get("scripts", {})
        self.entries = scripts if isinstance(scripts, dict) else {}
        return self

    def save(self) -> None:
        """Write the index atomically.

        Raises:
            StorageError: It could not be written.
        """
        data = {"schema": INDEX_SCHEMA, "scripts": self.entries}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, data)
        elif self.store is not None and self.blob_name is not None:
            body = json.dumps(data, indent=2, sort_keys=True).encode("utf-8")
            self.store.write_bytes(self.blob_name, body, content_type="application/json")

    def changed(self, name: str, digest: str) -> bool:
        """Whether ``name`` is new or its hash differs from the last render."""
        return self.entries.get(name, {}).get("sha256") != digest


def _key(text: str) -> str:
    """A short, file-name-safe key for a source (readable stem + hash)."""
    stem = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[-40:] or "root"
    return f"{stem}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def target_from_settings() -> SpeechTarget:
    """The Speech target from ``AVATARPIPE_SPEECH_ENDPOINT`` and friends.

    Raises:
        ConfigError: No endpoint is configured.
    """
    conf = settings()
    if not conf.speech_endpoint:
        raise ConfigError(
            "AVATARPIPE_SPEECH_ENDPOINT is not set: scheduled runs need a Speech endpoint "
            "(or a running emulator's URL with AVATARPIPE_BACKEND=emulator; `make up` sets both)"
        )
    return SpeechTarget(
        endpoint=conf.speech_endpoint,
        backend=conf.resolved_backend,
        requests_per_minute=conf.requests_per_minute,
    )


@task(name="collect-scripts", task_run_name="collect-{source}", cache_policy=NO_CACHE)
def collect_scripts(source: str, out_dir: str) -> tuple[list[str], str]:
    """List the source's script files (mirroring a blob prefix locally first).

    Returns:
        The local script paths (sorted) and the folder they are named relative to.

    Raises:
        ConfigError: The folder does not exist, or ``blob:`` without a blob setting.
        StorageError: The container could not be read.
    """
    if source.startswith(BLOB_SCHEME):
        store = store_from_settings(settings())
        if store is None:
            raise ConfigError(
                f"nightly source {source!r} needs AVATARPIPE_BLOB_CONNECTION_STRING "
                "(or AVATARPIPE_BLOB_ACCOUNT_URL)"
            )
        prefix = source[len(BLOB_SCHEME) :].strip("/")
        prefix = prefix + "/" if prefix else ""
        mirror = Path(out_dir) / ".nightly" / "mirror" / _key(source)
        shutil.rmtree(mirror, ignore_errors=True)  # a script deleted from the prefix is gone
        for name in store.list_names(prefix):
            rel = name[len(prefix) :]
            if not rel or rel.startswith(".avatarpipe/") or ".." in rel.split("/"):
                continue
            dest = mirror / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            store.download(name, dest)
        folder = mirror
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise ConfigError(f"nightly source folder {folder} does not exist")
    paths = sorted(
        str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _SCRIPT_SUFFIXES
    )
    return paths, str(folder)


def _index_for(source: str, out_dir: str) -> ScriptIndex:
    if source.startswith(BLOB_SCHEME):
        store = store_from_settings(settings())
        assert store is not None  # collect_scripts checked it
        prefix = source[len(BLOB_SCHEME) :].strip("/")
        return ScriptIndex(store=store, blob_name=f".avatarpipe/nightly/{_key(prefix)}.json")
    resolved = str(Path(source).resolve())
    return ScriptIndex(path=Path(out_dir) / ".nightly" / f"index-{_key(resolved)}.json")


@flow(name="nightly-scripts", flow_run_name="nightly-{source}", log_prints=True)
def nightly(
    source: str = "scripts",
    target: SpeechTarget | None = None,
    options: RunOptions | None = None,
    force: bool = False,
) -> NightlyResult:
    """Render every new or changed script of a folder (or a ``blob:<prefix>``).

    Args:
        source: A folder of ``*.yaml`` scripts, or ``blob:<prefix>`` in the configured container.
        target: Where the Speech service is (default: from ``AVATARPIPE_SPEECH_ENDPOINT``).
        options: How each render behaves (default: output root from ``AVATARPIPE_OUTPUT_DIR``).
        force: Render every script, changed or not.

    Returns:
        What was rendered, skipped and failed.

    Raises:
        ConfigError: No endpoint, a missing folder, or ``blob:`` without a blob setting.
        StorageError: The index could not be read or written.
        OutcomeError: At least one script failed (raised after all others ran; the failed
            scripts keep their old hash and are retried next time).
    """
    logger = get_run_logger()
    chosen = target or target_from_settings()
    opts = options or RunOptions(out_dir=str(settings().output_dir))
    paths, folder = collect_scripts(source, opts.out_dir)
    index = _index_for(source, opts.out_dir).load()
    result = NightlyResult(source=source)
    rendered_rows: list[dict[str, Any]] = []
    for path in paths:
        name = str(Path(path).relative_to(folder))
        try:
            digest = script_hash(load_script(path))
        except AvatarpipeError as exc:
            result.failed[name] = exc.message
            logger.error("script %s is invalid: %s", name, exc.message)
            continue
        if not force and not index.changed(name, digest):
            result.skipped.append(name)
            continue
        logger.info("rendering %s (%s)", name, "new" if name not in index.entries else "changed")
        state = script_to_video(
            path, chosen, opts.model_copy(update={"run_id": None}), None, return_state=True
        )
        if not state.is_completed():
            reason = str(state.message or state.name)
            try:
                state.result()
            except AvatarpipeError as exc:
                reason = exc.message
            except Exception as exc:  # noqa: BLE001 - any failure of one script is recorded
                reason = f"{type(exc).__name__}: {exc}"
            result.failed[name] = reason
            logger.error("script %s failed: %s", name, reason)
            continue
        published = state.result()
        folders = [p.folder for p in published]
        index.entries[name] = {
            "sha256": digest,
            "folders": folders,
            "videos": [Path(v).name for p in published for v in p.videos],
            "rendered_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        index.save()
        result.rendered.append(name)
        result.folders.extend(folders)
        rendered_rows.append({"script": name, "sha256": digest, "folder": ", ".join(folders)})
    gone = sorted(set(index.entries) - {str(Path(p).relative_to(folder)) for p in paths})
    if gone:
        for name in gone:
            del index.entries[name]
        index.save()
    report_nightly(source, rendered_rows, result.skipped, result.failed)
    logger.info(
        "nightly %s: %d rendered, %d unchanged, %d failed",
        source,
        len(result.rendered),
        len(result.skipped),
        len(result.failed),
    )
    if result.failed:
        for name, reason in result.failed.items():
            emit_event(
                "avatarpipe.script.failed",
                resource={"prefect.resource.id": f"avatarpipe.script.{_key(name)}"},
                payload={"script": name, "source": source, "reason": reason[:500]},
            )
        first, reason = next(iter(result.failed.items()))
        raise OutcomeError(
            f"nightly {source}: {len(result.failed)} script(s) failed "
            f"({len(result.rendered)} rendered, {len(result.skipped)} unchanged); "
            f"first: {first}: {reason}"
        )
    return result
