"""Azure Blob Storage: destination containers for multi-input jobs, and publishing results.

Connect with a connection string (``AccountKey=`` or ``SharedAccessSignature=``; Azurite's
works) or an account URL plus a credential: an account key, an ``AzureNamedKeyCredential``, an
Entra token credential (SAS URLs are then signed with a user delegation key; a bare account URL
in the settings signs in with ``DefaultAzureCredential``) or nothing when the URL itself carries a
SAS. Every upload checks
its MD5 and is skipped when the blob already holds the same bytes; read and write links are
short-lived SAS URLs, minted on demand and never logged or stored.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import mimetypes
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    ContentSettings,
    UserDelegationKey,
    generate_blob_sas,
    generate_container_sas,
)

from avatarpipe.errors import ConfigError, DownloadError, StorageError, redact
from avatarpipe.settings import Settings
from avatarpipe.speech.pipeline import ByteStream

__all__ = ["BlobStore", "content_type_for", "store_from_settings"]

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


def _reason(exc: Exception) -> str:
    """One redacted line for an Azure error: the service's message and error code."""
    text = str(getattr(exc, "message", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)
    return redact(f"{line} ({code})" if code and str(code) not in line else line)


def _bare(url: str) -> str:
    """``url`` without its query (a client made with a SAS puts it in every URL)."""
    parts = urlsplit(str(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def content_type_for(path: Path) -> str:
    """The ``Content-Type`` a published file is stored with (``video/mp4``, ``text/vtt``...)."""
    return _CONTENT_TYPES.get(path.suffix.lower()) or (
        mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    )


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
        account_key: The account key, to sign service SAS URLs.
        sas_token: A SAS the account URL was given with (used as is for links when there is no
            key to sign with).
    """

    def __init__(
        self,
        service: BlobServiceClient,
        container: str,
        *,
        account_key: str | None = None,
        sas_token: str | None = None,
    ) -> None:
        self._service = service
        self._container: ContainerClient = service.get_container_client(container)
        self._account_key = account_key
        self._sas_token = sas_token
        self._delegation: tuple[UserDelegationKey, datetime] | None = None
        self.container_name = container

    @classmethod
    def from_connection_string(cls, conn: str, container: str) -> BlobStore:
        """Connect with a connection string.

        Args:
            conn: ``DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...`` (Azurite's too)
                or ``BlobEndpoint=...;SharedAccessSignature=...`` (an account SAS, used as is
                for links).
            container: The container name.

        Returns:
            The store (nothing is contacted yet).

        Raises:
            ConfigError: The connection string is malformed.
        """
        try:
            service = BlobServiceClient.from_connection_string(conn)
        except (ValueError, AzureError) as exc:
            raise ConfigError(f"AVATARPIPE_BLOB_CONNECTION_STRING: {_reason(exc)}") from None
        parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
        sas = parts.get("SharedAccessSignature", "").lstrip("?") or None
        return cls(service, container, account_key=parts.get("AccountKey"), sas_token=sas)

    @classmethod
    def from_account_url(cls, url: str, container: str, credential: Any = None) -> BlobStore:
        """Connect with an account URL and a credential.

        Args:
            url: ``https://<account>.blob.core.windows.net`` (or Azurite's
                ``http://127.0.0.1:10000/devstoreaccount1``), optionally with an account SAS.
            container: The container name.
            credential: An account key (``str``), an ``AzureNamedKeyCredential``, a token
                credential (Entra; links are signed with a user delegation key), or ``None``
                when ``url`` carries a SAS.

        Returns:
            The store (nothing is contacted yet).

        Raises:
            ConfigError: The URL is not an http(s) URL.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"AVATARPIPE_BLOB_ACCOUNT_URL: {redact(url)!r} is not an http(s) URL")
        sas = parts.query or None
        bare = _bare(url)
        try:
            if isinstance(credential, str):
                probe = BlobServiceClient(account_url=bare)
                named = AzureNamedKeyCredential(probe.account_name or "", credential)
                service = BlobServiceClient(account_url=bare, credential=named)
                return cls(service, container, account_key=credential)
            if isinstance(credential, AzureNamedKeyCredential):
                service = BlobServiceClient(account_url=bare, credential=credential)
                return cls(service, container, account_key=credential.named_key.key)
            service = BlobServiceClient(account_url=url if sas else bare, credential=credential)
        except (ValueError, AzureError) as exc:
            raise ConfigError(f"AVATARPIPE_BLOB_ACCOUNT_URL: {_reason(exc)}") from None
        return cls(service, container, sas_token=sas if credential is None else None)

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
            raise StorageError(f"blob container {self.container_name}: {_reason(exc)}") from None

    def _delegation_key(self, expiry: datetime) -> UserDelegationKey:
        """A user delegation key valid until at least ``expiry`` (cached; Entra credentials)."""
        if self._delegation is None or self._delegation[1] < expiry:
            start = datetime.now(UTC) - timedelta(minutes=5)
            until = max(expiry, datetime.now(UTC) + timedelta(hours=1))
            try:
                key = self._service.get_user_delegation_key(start, until)
            except AzureError as exc:
                raise StorageError(f"user delegation key: {_reason(exc)}") from None
            self._delegation = (key, until)
        return self._delegation[0]

    def _sign(self, expiry: datetime, *, blob: str | None, write: bool) -> str:
        """A SAS query string for the container (or one blob), without the ``?``."""
        start = datetime.now(UTC) - timedelta(minutes=5)
        account = self._service.account_name or ""
        if not self._account_key and self._sas_token:
            return self._sas_token
        signer: dict[str, Any]
        if self._account_key:
            signer = {"account_key": self._account_key}
        elif self._service.credential is not None and hasattr(
            self._service.credential, "get_token"
        ):
            signer = {"user_delegation_key": self._delegation_key(expiry)}
        else:
            raise ConfigError(
                "AVATARPIPE_BLOB_CONNECTION_STRING: an account key, an Entra credential or a SAS "
                "is needed to sign SAS URLs"
            )
        if blob is not None:
            return generate_blob_sas(
                account_name=account,
                container_name=self.container_name,
                blob_name=blob,
                permission=BlobSasPermissions(read=True),
                expiry=expiry,
                start=start,
                **signer,
            )
        perms = (
            ContainerSasPermissions(read=True, write=True, create=True, list=True, add=True)
            if write
            else ContainerSasPermissions(read=True, list=True)
        )
        return generate_container_sas(
            account_name=account,
            container_name=self.container_name,
            permission=perms,
            expiry=expiry,
            start=start,
            **signer,
        )

    def container_sas_url(self, *, write: bool, lifetime: timedelta = timedelta(hours=12)) -> str:
        """A SAS URL for the whole container (what ``destinationContainerUrl`` needs).

        Args:
            write: Grant read, write, create, add and list (for ``destinationContainerUrl``);
                else read and list.
            lifetime: How long the SAS is valid (the expiry is ``now + lifetime``).

        Returns:
            The container URL with its SAS. Never log it.

        Raises:
            ConfigError: Nothing to sign with (no key, no Entra credential, no SAS).
            StorageError: A user delegation key could not be obtained.
        """
        token = self._sign(datetime.now(UTC) + lifetime, blob=None, write=write)
        return f"{_bare(self._container.url)}?{token}"

    def blob_url(self, name: str) -> str:
        """The plain URL of a blob, without any SAS (safe for logs and artifacts)."""
        return _bare(self._container.get_blob_client(name).url)

    @contextlib.contextmanager
    def stream(self, name: str) -> Iterator[ByteStream]:
        """Open a blob for streaming; the last chunk is checked against its size and stored MD5.

        Args:
            name: The blob name.

        Yields:
            ``(size, chunks)``: the blob's size and an iterator of its chunks.

        Raises:
            DownloadError: Missing blob, transfer failure, or (once the chunks are read) a size or
                MD5 mismatch.
        """
        try:
            blob = self._container.get_blob_client(name).download_blob(validate_content=False)
        except ResourceNotFoundError:
            raise DownloadError(f"blob {name} not found in {self.container_name}") from None
        except AzureError as exc:
            raise DownloadError(f"blob {name}: {_reason(exc)}") from None
        size = int(blob.properties.size)
        stored_md5 = blob.properties.content_settings.content_md5

        def chunks() -> Iterator[bytes]:
            digest = hashlib.md5()  # noqa: S324 - Blob Storage's own integrity check
            read = 0
            try:
                for chunk in blob.chunks():
                    digest.update(chunk)
                    read += len(chunk)
                    yield chunk
            except AzureError as exc:
                raise DownloadError(f"blob {name}: {_reason(exc)}") from None
            if read != size:
                raise DownloadError(f"blob {name}: got {read} bytes of {size}")
            if stored_md5 and bytes(stored_md5) != digest.digest():
                raise DownloadError(f"blob {name}: MD5 does not match")

        yield size, chunks()

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
            raise StorageError(f"blob {name}: {_reason(exc)}") from None
        content_type = content_type_for(path)
        try:
            with path.open("rb") as fh:
                blob.upload_blob(
                    fh,
                    overwrite=True,
                    metadata=metadata or {},
                    content_settings=ContentSettings(
                        content_type=content_type, content_md5=bytearray(md5)
                    ),
                    validate_content=True,
                )
        except AzureError as exc:
            raise StorageError(f"blob {name}: upload failed: {_reason(exc)}") from None
        log.info("uploaded %s (%s, md5 %s)", name, content_type, base64.b64encode(md5).decode())
        return True

    def read_url(self, name: str, *, lifetime: timedelta = timedelta(hours=1)) -> str:
        """A short-lived, read-only link to one blob (a blob-scoped SAS).

        Args:
            name: The blob name.
            lifetime: How long the link works.

        Returns:
            The blob URL with its SAS. Never log it or store it in an artifact.

        Raises:
            ConfigError: Nothing to sign with.
            StorageError: A user delegation key could not be obtained.
        """
        token = self._sign(datetime.now(UTC) + lifetime, blob=name, write=False)
        return f"{self.blob_url(name)}?{token}"

    def read_bytes(self, name: str) -> bytes:
        """Read a whole (small) blob.

        Raises:
            StorageError: Missing or unreadable.
        """
        try:
            return bytes(self._container.get_blob_client(name).download_blob().readall())
        except AzureError as exc:
            raise StorageError(f"blob {name}: {_reason(exc)}") from None

    def read_bytes_if_exists(self, name: str) -> bytes | None:
        """Read a whole (small) blob in one request, or ``None`` when it does not exist.

        Raises:
            StorageError: Unreadable.
        """
        try:
            return bytes(self._container.get_blob_client(name).download_blob().readall())
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise StorageError(f"blob {name}: {_reason(exc)}") from None

    def write_bytes(self, name: str, data: bytes, *, content_type: str) -> None:
        """Write a small blob in one request (the service commits it atomically).

        Raises:
            StorageError: The write failed.
        """
        try:
            self._container.get_blob_client(name).upload_blob(
                data,
                overwrite=True,
                content_settings=ContentSettings(
                    content_type=content_type,
                    content_md5=bytearray(hashlib.md5(data).digest()),  # noqa: S324
                ),
            )
        except AzureError as exc:
            raise StorageError(f"blob {name}: write failed: {_reason(exc)}") from None

    def list_names(self, prefix: str = "") -> list[str]:
        """The names of the blobs under ``prefix``, sorted.

        Raises:
            StorageError: The listing failed.
        """
        try:
            return sorted(b.name for b in self._container.list_blobs(name_starts_with=prefix))
        except AzureError as exc:
            raise StorageError(f"listing {self.container_name}/{prefix}: {_reason(exc)}") from None

    def properties(self, name: str) -> tuple[str, dict[str, str], bytes | None]:
        """A blob's content type, metadata and stored MD5.

        Raises:
            StorageError: Missing or unreadable.
        """
        try:
            props = self._container.get_blob_client(name).get_blob_properties()
        except AzureError as exc:
            raise StorageError(f"blob {name}: {_reason(exc)}") from None
        md5 = props.content_settings.content_md5
        return (
            str(props.content_settings.content_type or ""),
            dict(props.metadata or {}),
            bytes(md5) if md5 else None,
        )


def store_from_settings(conf: Settings) -> BlobStore | None:
    """The configured blob container, or ``None`` for local ``outputs/`` only.

    ``AVATARPIPE_BLOB_CONNECTION_STRING`` wins; else ``AVATARPIPE_BLOB_ACCOUNT_URL``, carrying an
    account SAS (``https://<account>.blob.core.windows.net/?sv=...``) or bare, then signed in with
    ``azure.identity.DefaultAzureCredential`` (links signed with a user delegation key).

    Args:
        conf: The settings.

    Returns:
        The store, or ``None`` when no blob setting is given.

    Raises:
        ConfigError: A blob setting is malformed.
    """
    if conf.blob_connection_string is not None:
        return BlobStore.from_connection_string(
            conf.blob_connection_string.get_secret_value(), conf.blob_container
        )
    url = conf.blob_account_url
    if url and urlsplit(url).query:
        return BlobStore.from_account_url(url, conf.blob_container)
    if url:
        # Imported here: azure-identity (msal, cryptography) costs a third of a second to import.
        from azure.identity import DefaultAzureCredential

        return BlobStore.from_account_url(url, conf.blob_container, DefaultAzureCredential())
    return None
