"""BlobStore against a real Azurite: publish, read back, skip identical content, SAS links."""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from azurite_fixture import Azurite

from avatarpipe.batch.fetch import download
from avatarpipe.errors import DownloadError, StorageError
from avatarpipe.settings import load_settings
from avatarpipe.storage.blob import BlobStore, store_from_settings

pytestmark = pytest.mark.azurite


def _store(azurite: Azurite) -> BlobStore:
    store = BlobStore.from_connection_string(
        azurite.connection_string, f"t-{uuid.uuid4().hex[:12]}"
    )
    store.ensure_container()
    return store


def test_published_files_read_back_identical_with_types_and_metadata(
    azurite: Azurite, tmp_path: Path
) -> None:
    store = _store(azurite)
    video = tmp_path / "clip.mp4"
    video.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several blocks' worth
    vtt = tmp_path / "clip.vtt"
    vtt.write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n", encoding="utf-8")
    meta = {
        "script": "quarterly-update",
        "run_id": "20261125-120000-abcd",
        "job_ids": "job-1,job-2",
    }
    assert store.upload(video, "quarterly-update/run/clip.mp4", metadata=meta) is True
    assert store.upload(vtt, "quarterly-update/run/clip.vtt", metadata=meta) is True

    back = tmp_path / "back.mp4"
    assert download(store.stream, "quarterly-update/run/clip.mp4", back) == video.stat().st_size
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(video.read_bytes()).digest()
    assert store.read_bytes("quarterly-update/run/clip.vtt") == vtt.read_bytes()

    ctype, metadata, md5 = store.properties("quarterly-update/run/clip.mp4")
    assert ctype == "video/mp4"
    assert metadata == meta
    assert md5 == hashlib.md5(video.read_bytes()).digest()
    assert store.properties("quarterly-update/run/clip.vtt")[0] == "text/vtt"
    assert store.list_names("quarterly-update/") == [
        "quarterly-update/run/clip.mp4",
        "quarterly-update/run/clip.vtt",
    ]


def test_upload_skips_identical_content_and_overwrites_changed_content(
    azurite: Azurite, tmp_path: Path
) -> None:
    store = _store(azurite)
    path = tmp_path / "manifest.json"
    path.write_text('{"v": 1}', encoding="utf-8")
    assert store.upload(path, "m/manifest.json") is True
    assert store.upload(path, "m/manifest.json") is False, "same bytes: no second upload"
    path.write_text('{"v": 2}', encoding="utf-8")
    assert store.upload(path, "m/manifest.json") is True
    assert store.read_bytes("m/manifest.json") == b'{"v": 2}'
    assert store.properties("m/manifest.json")[0] == "application/json"


def test_read_links_are_read_only_and_work_over_plain_http(
    azurite: Azurite, tmp_path: Path
) -> None:
    store = _store(azurite)
    path = tmp_path / "poster.png"
    path.write_bytes(b"\x89PNG fake poster bytes")
    store.upload(path, "a/poster.png")
    url = store.read_url("a/poster.png", lifetime=timedelta(minutes=5))
    assert "sig=" in url and url.startswith(store.blob_url("a/poster.png") + "?")
    assert "sig=" not in store.blob_url("a/poster.png")
    got = httpx.get(url, timeout=10)
    assert got.status_code == 200 and got.content == path.read_bytes()
    assert got.headers["content-type"] == "image/png"
    # The same link cannot write, and the plain URL (no SAS) cannot read.
    put = httpx.put(url, content=b"x", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    assert put.status_code == 403
    assert httpx.get(store.blob_url("a/poster.png"), timeout=10).status_code in (401, 403, 404)
    # An expired link is refused.
    expired = store.read_url("a/poster.png", lifetime=timedelta(minutes=-10))
    assert httpx.get(expired, timeout=10).status_code == 403


def test_write_sas_url_lets_a_third_party_write_into_the_container(azurite: Azurite) -> None:
    from azure.storage.blob import ContainerClient

    store = _store(azurite)
    url = store.container_sas_url(write=True, lifetime=timedelta(minutes=10))
    client = ContainerClient.from_container_url(url)
    client.upload_blob("job-1/0001.mp4", b"rendered video bytes")
    assert store.read_bytes("job-1/0001.mp4") == b"rendered video bytes"
    reader = ContainerClient.from_container_url(store.container_sas_url(write=False))
    with pytest.raises(Exception, match="(?i)authoriz|permission"):
        reader.upload_blob("job-1/0002.mp4", b"nope")


def test_account_url_with_key_and_settings_connection(
    azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    store = BlobStore.from_account_url(azurite.account_url, name, azurite.account_key)
    store.ensure_container()
    path = tmp_path / "x.json"
    path.write_text("{}", encoding="utf-8")
    store.upload(path, "x.json")
    monkeypatch.setenv("AVATARPIPE_BLOB_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("AVATARPIPE_BLOB_CONTAINER", name)
    same = store_from_settings(load_settings())
    assert same is not None and same.read_bytes("x.json") == b"{}"
    monkeypatch.delenv("AVATARPIPE_BLOB_CONNECTION_STRING")
    assert store_from_settings(load_settings()) is None, "no blob setting: local outputs/ only"
    # An account URL carrying a SAS works without a key.
    sas = store.container_sas_url(write=False).split("?", 1)[1]
    monkeypatch.setenv("AVATARPIPE_BLOB_ACCOUNT_URL", f"{azurite.account_url}?{sas}")
    via_sas = store_from_settings(load_settings())
    assert via_sas is not None and via_sas.read_bytes("x.json") == b"{}"


def test_missing_blob_and_corrupted_blob_fail_clearly(azurite: Azurite, tmp_path: Path) -> None:
    store = _store(azurite)
    with pytest.raises(DownloadError, match="not found"):
        download(store.stream, "nope.mp4", tmp_path / "nope.mp4")
    assert not (tmp_path / "nope.mp4").exists() and not (tmp_path / "nope.mp4.part").exists()
    with pytest.raises(StorageError):
        store.read_bytes("nope.json")
    # A blob whose stored MD5 does not match its bytes is rejected, and nothing is left behind.
    from azure.storage.blob import ContentSettings

    planted = store._container.upload_blob("bad.mp4", b"actual bytes")  # noqa: SLF001
    planted.set_http_headers(
        ContentSettings(
            content_type="video/mp4", content_md5=bytearray(hashlib.md5(b"other").digest())
        )
    )
    with pytest.raises(DownloadError, match="MD5"):
        download(store.stream, "bad.mp4", tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()


def test_chunked_transfers_keep_the_whole_blob_md5(azurite: Azurite, tmp_path: Path) -> None:
    from azure.storage.blob import BlobServiceClient

    mib = 1 << 20
    service = BlobServiceClient.from_connection_string(
        azurite.connection_string,
        max_single_get_size=mib,
        max_chunk_get_size=mib,
        max_single_put_size=mib,
        max_block_size=mib,
    )
    store = BlobStore(service, f"t-{uuid.uuid4().hex[:12]}", account_key=azurite.account_key)
    store.ensure_container()
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(5 * mib + 3))  # uploaded in blocks, downloaded in ranges
    assert store.upload(big, "big.mp4") is True
    assert store.properties("big.mp4")[2] == hashlib.md5(big.read_bytes()).digest()
    assert download(store.stream, "big.mp4", tmp_path / "back.mp4") == big.stat().st_size
    assert (tmp_path / "back.mp4").read_bytes() == big.read_bytes()
    assert store.upload(big, "big.mp4") is False


def test_service_errors_are_one_line(azurite: Azurite) -> None:
    store = BlobStore.from_connection_string(azurite.connection_string, "x")  # too short a name
    with pytest.raises(StorageError) as info:
        store.ensure_container()
    assert "\n" not in info.value.message and "blob container x:" in info.value.message
    assert "OutOfRangeInput" in info.value.message


def test_connection_string_with_a_shared_access_signature(
    azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from azure.storage.blob import (
        AccountSasPermissions,
        BlobClient,
        ResourceTypes,
        generate_account_sas,
    )

    sas = generate_account_sas(
        account_name=azurite.account_name,
        account_key=azurite.account_key,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, create=True, add=True, list=True),
        expiry=datetime.now(UTC) + timedelta(minutes=30),
    )
    conn = f"BlobEndpoint={azurite.account_url};SharedAccessSignature={sas}"
    name = f"t-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AVATARPIPE_BLOB_CONNECTION_STRING", conn)
    monkeypatch.setenv("AVATARPIPE_BLOB_CONTAINER", name)
    store = store_from_settings(load_settings())
    assert store is not None
    store.ensure_container()
    video = tmp_path / "clip.mp4"
    video.write_bytes(os.urandom(64 * 1024 + 5))
    assert store.upload(video, "run/clip.mp4") is True
    assert store.upload(video, "run/clip.mp4") is False, "same bytes: no second upload"
    back = tmp_path / "back.mp4"
    assert download(store.stream, "run/clip.mp4", back) == video.stat().st_size
    assert back.read_bytes() == video.read_bytes()
    # Links carry the connection string's SAS (there is no key to sign another one with).
    link = store.read_url("run/clip.mp4")
    assert BlobClient.from_blob_url(link).download_blob().readall() == video.read_bytes()
    # The plain URLs (for logs and manifests) never carry it.
    sig = sas.split("sig=", 1)[1].split("&", 1)[0]
    assert "?" not in store.blob_url("run/clip.mp4")
    assert store.blob_url("run/clip.mp4") == f"{azurite.account_url}/{name}/run/clip.mp4"
    assert store.container_sas_url(write=True).count("?") == 1
    assert store.list_names("run/") == ["run/clip.mp4"]
    with pytest.raises(DownloadError) as info:
        download(store.stream, "nope.mp4", tmp_path / "nope.mp4")
    assert sig not in info.value.message and sig not in repr(store)
    from avatarpipe.errors import redact

    assert sig not in redact(conn) and "SharedAccessSignature=***" in redact(conn)


def test_a_bare_account_url_signs_in_with_default_azure_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from azure.identity import DefaultAzureCredential

    monkeypatch.setenv("AVATARPIPE_BLOB_ACCOUNT_URL", "https://contoso.blob.core.windows.net")
    store = store_from_settings(load_settings())
    assert store is not None
    assert isinstance(store._service.credential, DefaultAzureCredential)  # noqa: SLF001
    assert store.blob_url("a/b.mp4") == "https://contoso.blob.core.windows.net/avatarpipe/a/b.mp4"
