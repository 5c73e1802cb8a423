"""The nightly sweep's memory: which scripts a source holds, and what was rendered last time.

The source is a folder of script files (``*.yaml``/``*.yml``) or ``blob:<prefix>``: the scripts
(and any assets they reference) under a prefix of the configured container, mirrored to a local
folder first. Each script's content hash (``script_hash``: the validated script, its assets and
its SSML template) is compared with a small JSON index of what was rendered. The index is
updated after every successful render, atomically: a local file (written through a temporary
file and renamed) beside the outputs, or one blob in the container (a blob write is atomic). A
failed script keeps its old hash, so the next sweep retries it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from avatarpipe.batch.fetch import download
from avatarpipe.errors import ConfigError, OutcomeError, StorageError
from avatarpipe.publish.folder import write_json_atomic
from avatarpipe.publish.release import PublishedVideo
from avatarpipe.scripts.loader import load_script
from avatarpipe.scripts.ssml import script_hash
from avatarpipe.settings import Settings
from avatarpipe.storage.blob import BlobStore, store_from_settings

__all__ = [
    "BLOB_SCHEME",
    "INDEX_SCHEMA",
    "NightlyResult",
    "ScriptIndex",
    "collect_scripts",
    "index_for",
    "script_digest",
    "source_key",
    "source_store",
]

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

    def error(self) -> OutcomeError | None:
        """The sweep's error when a script failed (naming the first), else ``None``."""
        if not self.failed:
            return None
        first, reason = next(iter(self.failed.items()))
        return OutcomeError(
            f"nightly {self.source}: {len(self.failed)} script(s) failed "
            f"({len(self.rendered)} rendered, {len(self.skipped)} unchanged); "
            f"first: {first}: {reason}"
        )


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

    def record(self, name: str, digest: str, published: list[PublishedVideo]) -> list[str]:
        """Remember a successful render of ``name`` and save the index.

        Returns:
            The published folders.

        Raises:
            StorageError: The index could not be written.
        """
        folders = [p.folder for p in published]
        self.entries[name] = {
            "sha256": digest,
            "folders": folders,
            "videos": [Path(v).name for p in published for v in p.videos],
            "rendered_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.save()
        return folders

    def keep_only(self, names: set[str]) -> None:
        """Forget the scripts no longer in the source (saving only when one was forgotten).

        Raises:
            StorageError: The index could not be written.
        """
        gone = sorted(set(self.entries) - names)
        if gone:
            for name in gone:
                del self.entries[name]
            self.save()


def source_key(text: str) -> str:
    """A short, file-name-safe key for a source (readable stem + hash)."""
    stem = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[-40:] or "root"
    return f"{stem}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def script_digest(path: str | Path) -> str:
    """The content hash of a script file (what the index compares).

    Raises:
        ScriptError: The script is invalid.
    """
    return script_hash(load_script(path))


def source_store(source: str, conf: Settings) -> BlobStore | None:
    """The container a ``blob:`` source lives in (``None`` for a folder).

    Raises:
        ConfigError: ``blob:`` without a blob setting, or a malformed one.
    """
    if not source.startswith(BLOB_SCHEME):
        return None
    store = store_from_settings(conf)
    if store is None:
        raise ConfigError(
            f"nightly source {source!r} needs AVATARPIPE_BLOB_CONNECTION_STRING "
            "(or AVATARPIPE_BLOB_ACCOUNT_URL)"
        )
    return store


def _prefix(source: str) -> str:
    return source[len(BLOB_SCHEME) :].strip("/")


def collect_scripts(
    source: str, out_dir: str | Path, store: BlobStore | None
) -> tuple[list[str], str]:
    """List the source's script files (mirroring a blob prefix locally first).

    Args:
        source: A folder, or ``blob:<prefix>``.
        out_dir: The output root (the mirror goes under ``.nightly/mirror/``).
        store: The container of a ``blob:`` source (see :func:`source_store`).

    Returns:
        The local script paths (sorted) and the folder they are named relative to.

    Raises:
        ConfigError: The folder does not exist, or ``blob:`` without a container.
        StorageError: The container could not be read.
    """
    if source.startswith(BLOB_SCHEME):
        if store is None:
            raise ConfigError(f"nightly source {source!r} needs a blob container")
        prefix = _prefix(source)
        prefix = prefix + "/" if prefix else ""
        mirror = Path(out_dir) / ".nightly" / "mirror" / source_key(source)
        shutil.rmtree(mirror, ignore_errors=True)  # a script deleted from the prefix is gone
        for name in store.list_names(prefix):
            rel = name[len(prefix) :]
            if not rel or rel.startswith(".avatarpipe/") or ".." in rel.split("/"):
                continue
            dest = mirror / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            download(store.stream, name, dest, shown=f"blob {name}")
        folder = mirror
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise ConfigError(f"nightly source folder {folder} does not exist")
    paths = sorted(
        str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _SCRIPT_SUFFIXES
    )
    return paths, str(folder)


def index_for(source: str, out_dir: str | Path, store: BlobStore | None) -> ScriptIndex:
    """The (not yet loaded) index of a source: a blob beside a ``blob:`` source, else a file.

    Raises:
        ConfigError: ``blob:`` without a container.
    """
    if source.startswith(BLOB_SCHEME):
        if store is None:
            raise ConfigError(f"nightly source {source!r} needs a blob container")
        return ScriptIndex(
            store=store, blob_name=f".avatarpipe/nightly/{source_key(_prefix(source))}.json"
        )
    resolved = str(Path(source).resolve())
    return ScriptIndex(path=Path(out_dir) / ".nightly" / f"index-{source_key(resolved)}.json")
