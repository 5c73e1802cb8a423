"""Checks before paying: everything that could still fail locally is tried before the first PUT.

A run that pays for jobs and then finds it cannot write its results has wasted the money. So
before any request that costs money (an avatar probe job, a synthesis job), a run checks:

* the output root is a folder it can write (:func:`avatarpipe.publish.folder.check_output_root`),
  with room for the run (a rough estimate per video: :data:`BYTES_PER_VIDEO`);
* the blob container, when one is configured, is reachable with the configured credentials;
* every script's post-processing preset loads and its SSML templates render (done by the caller:
  scripts are validated and rendered before anything is submitted).

Each failure is one line naming what and where (a :class:`~avatarpipe.errors.ConfigError`:
exit 2), and nothing has been paid for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from avatarpipe.errors import ConfigError, StorageError
from avatarpipe.publish.folder import check_output_root, check_room
from avatarpipe.scripts.model import Script
from avatarpipe.storage.blob import BlobStore

__all__ = [
    "BYTES_PER_VIDEO",
    "check_before_paying",
    "check_blob",
    "check_store",
    "expected_bytes",
]

BYTES_PER_VIDEO = 40 * 2**20
"""A rough size of one scene video (a downloaded 1080p scene of about 30 s, with headroom)."""


def expected_bytes(scripts: Sequence[Script], *, postprocess: bool = True) -> int:
    """A rough estimate of what a run writes: each scene once in the cache, once per output.

    Args:
        scripts: The run's scripts.
        postprocess: Whether every variant is rendered (else the scenes are only joined).

    Returns:
        Bytes.
    """
    total = 0
    for script in scripts:
        outputs = len(script.post.variants) if postprocess else 1
        total += len(script.scenes) * BYTES_PER_VIDEO * (1 + outputs)
    return total


def check_blob(blob: BlobStore | None) -> None:
    """Make sure the configured container is reachable (created when missing).

    Raises:
        ConfigError: The account or container cannot be reached or refuses the credentials.
    """
    if blob is None:
        return
    try:
        blob.ensure_container()
    except StorageError as exc:
        raise ConfigError(
            f"AVATARPIPE_BLOB_CONTAINER {blob.container_name}: {exc.message}; check "
            "AVATARPIPE_BLOB_CONNECTION_STRING (or AVATARPIPE_BLOB_ACCOUNT_URL) and that the "
            "account is reachable from here"
        ) from None


def check_before_paying(
    out_dir: Path,
    scripts: Sequence[Script],
    blob: BlobStore | None,
    *,
    postprocess: bool = True,
) -> None:
    """Run every check that must pass before anything is paid for.

    Args:
        out_dir: The output root.
        scripts: The run's validated scripts.
        blob: The configured container, if any.
        postprocess: Whether the post-processing preset runs.

    Raises:
        ConfigError: The output root is not a writable folder, lacks room, or the container
            cannot be reached.
    """
    check_output_root(out_dir)
    check_room(out_dir, expected_bytes(scripts, postprocess=postprocess))
    check_blob(blob)


def check_store(root: Path, blob: BlobStore | None) -> None:
    """The checks of a synthesis run on its own: its store folder is writable, the container up.

    Args:
        root: The local result store's folder (the download cache).
        blob: The configured container, if any.

    Raises:
        ConfigError: The folder is not writable, or the container cannot be reached.
    """
    check_output_root(root)
    check_blob(blob)
