"""File checksums, read in 1 MiB chunks so memory stays flat for any file size."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_digest"]


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Return the hex digest of a file.

    Args:
        path: The file.
        algorithm: A ``hashlib`` algorithm name.

    Returns:
        The hex digest.

    Raises:
        OSError: The file cannot be read.
    """
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()
