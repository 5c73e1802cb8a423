"""Azure Blob Storage: destination containers for multi-input jobs, and publishing results.

Connect with a connection string (Azurite's works) or an account URL plus a credential. Every
upload checks its MD5 and is skipped when the blob already holds the same bytes; read and write
links are short-lived service SAS URLs, never logged.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import mimetypes
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    ContentSettings,
    generate_container_sas,
)

from avatarpipe.errors import ConfigError, DownloadError, StorageError, redact

__all__ = ["BlobStore"]

log = logging.getLogger(__name__)

_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".vtt": "text/vtt",
    ".srt": "application/x-subrip",
    ".json": "application/json",
    ".png": "image/png",
    ".jpg": "image/jpeg",
}


def _md5(path: Path) -> bytes:
    digest = hashlib.md5()  # noqa: S324 - Blob Storage's own integrity check
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


class BlobStore:
    """One container in one storage account.

    Args:
        service: The account's service client.
        container: The container name.
        account_key: The account key, needed to sign SAS URLs (from the connection string).
    """

    def __init__(
        self, service: BlobServiceClient, container: str, *, account_key: str | None = None
    ) -> None:
        self._service = service
        self._container: ContainerClient = service.get_container_client(container)
        self._account_key = account_key
        self.container_name = container

    @classmethod
    def from_connection_string(cls, conn: str, container: str) -> BlobStore:
        """Connect with a connection string.

        Raises:
            ConfigError: The connection string is malformed.
        """
        try:
            service = BlobServiceClient.from_connection_string(conn)
        except (ValueError, AzureError) as exc:
            raise ConfigError(f"AVATARPIPE_BLOB_CONNECTION_STRING: {redact(str(exc))}") from None
        parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
        return cls(service, container, account_key=parts.get("AccountKey"))

    @classmethod
    def from_account_url(cls, url: str, container: str, credential: Any) -> BlobStore:
        """Connect with an account URL and a credential (key string or Azure credential)."""
        service = BlobServiceClient(account_url=url, credential=credential)
        key = credential if isinstance(credential, str) else None
        return cls(service, container, account_key=key)

    def ensure_container(self) -> None:
        """Create the container when it does not exist.

        Raises:
            StorageError: The account refused.
        """
        try:
            self._container.create_container()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise StorageError(
                f"blob container {self.container_name}: {redact(str(exc))}"
            ) from None

    def container_sas_url(self, *, write: bool, lifetime: timedelta = timedelta(hours=12)) -> str:
        """A service SAS URL for the whole container (an ad-hoc SAS, as the service requires).

        Args:
            write: Grant write, create and list (for ``destinationContainerUrl``); else read.
            lifetime: How long the SAS is valid.

        Raises:
            ConfigError: No account key to sign with.
        """
        if not self._account_key:
            raise ConfigError(
                "AVATARPIPE_BLOB_CONNECTION_STRING: an account key is needed to sign SAS URLs"
            )
        perms = (
            ContainerSasPermissions(read=True, write=True, create=True, list=True, add=True)
            if write
            else ContainerSasPermissions(read=True, list=True)
        )
        token = generate_container_sas(
            account_name=self._service.account_name or "",
            container_name=self.container_name,
            account_key=self._account_key,
            permission=perms,
            expiry=datetime.now(UTC) + lifetime,
            start=datetime.now(UTC) - timedelta(minutes=5),
        )
        return f"{self._container.url}?{token}"

    def download(self, name: str, dest: Path) -> int:
        """Stream a blob to ``dest`` through a ``.part`` file, checking size (and MD5 if stored).

        Returns:
            The number of bytes written.

        Raises:
            DownloadError: Missing blob, transfer failure or a size/MD5 mismatch.
        """
        part = dest.with_name(dest.name + ".part")
        try:
            blob = self._container.get_blob_client(name)
            stream = blob.download_blob(validate_content=False)
            expected = stream.properties.size
            stored_md5 = stream.properties.content_settings.content_md5
            digest = hashlib.md5()  # noqa: S324
            written = 0
            with part.open("wb") as fh:
                for chunk in stream.chunks():
                    fh.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            if written != expected:
                raise DownloadError(f"blob {name}: got {written} bytes of {expected}")
            if stored_md5 and bytes(stored_md5) != digest.digest():
                raise DownloadError(f"blob {name}: MD5 does not match")
            os.replace(part, dest)
            return written
        except ResourceNotFoundError:
            raise DownloadError(f"blob {name} not found in {self.container_name}") from None
        except AzureError as exc:
            raise DownloadError(f"blob {name}: {redact(str(exc))}") from None
        finally:
            part.unlink(missing_ok=True)

    def upload(self, path: Path, name: str, *, metadata: dict[str, str] | None = None) -> bool:
        """Upload a file unless the blob already holds the same bytes (MD5).

        Args:
            path: The local file.
            name: The blob name.
            metadata: Blob metadata (script and job ids...).

        Returns:
            ``True`` when uploaded, ``False`` when the same content was already there.

        Raises:
            StorageError: The upload failed.
        """
        md5 = _md5(path)
        blob = self._container.get_blob_client(name)
        try:
            props = blob.get_blob_properties()
            existing = props.content_settings.content_md5
            if existing and bytes(existing) == md5:
                return False
        except ResourceNotFoundError:
            pass
        except AzureError as exc:
            raise StorageError(f"blob {name}: {redact(str(exc))}") from None
        content_type = _CONTENT_TYPES.get(path.suffix.lower()) or (
            mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        )
        try:
            with path.open("rb") as fh:
                blob.upload_blob(
                    fh,
                    overwrite=True,
                    metadata=metadata or {},
                    content_settings=ContentSettings(content_type=content_type, content_md5=md5),
                    validate_content=True,
                )
        except AzureError as exc:
            raise StorageError(f"blob {name}: upload failed: {redact(str(exc))}") from None
        log.info("uploaded %s (%s, md5 %s)", name, content_type, base64.b64encode(md5).decode())
        return True

    def read_url(self, name: str, *, lifetime: timedelta = timedelta(hours=1)) -> str:
        """A short-lived read link to one blob (container-scoped read SAS)."""
        sas = self.container_sas_url(write=False, lifetime=lifetime).split("?", 1)[1]
        return f"{self._container.get_blob_client(name).url}?{sas}"

    def read_bytes(self, name: str) -> bytes:
        """Read a whole (small) blob.

        Raises:
            StorageError: Missing or unreadable.
        """
        try:
            return bytes(self._container.get_blob_client(name).download_blob().readall())
        except AzureError as exc:
            raise StorageError(f"blob {name}: {redact(str(exc))}") from None
