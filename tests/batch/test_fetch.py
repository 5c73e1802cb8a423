"""Streamed result downloads (``BatchAvatarClient.stream`` + ``download``) against a real HTTP
server on loopback."""

from __future__ import annotations

import hashlib
import http.server
import logging
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avatarpipe.batch.fetch import download
from avatarpipe.errors import DownloadError, ResultExpiredError
from avatarpipe.speech import BatchAvatarClient, Pipeline
from avatarpipe.speech.auth import KeyAuth
from avatarpipe.speech.pipeline import safe_url

SIZE = 20 * 1024 * 1024
BLOCK = bytes(range(256)) * 256  # 64 KiB
SAS = "sv=2023-01-03&se=2030-01-01T00%3A00%3A00Z&sr=b&sp=r&sig=fake-sas-signature-1"
KEY = "storage-must-not-see-THIS-KEY"


def _stream_digest(size: int) -> str:
    digest = hashlib.sha256()
    left = size
    while left:
        piece = BLOCK[: min(len(BLOCK), left)]
        digest.update(piece)
        left -= len(piece)
    return digest.hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self, size: int, declared: int | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        if declared is not None:
            self.send_header("Content-Length", str(declared))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        left = size
        try:
            while left:
                piece = BLOCK[: min(len(BLOCK), left)]
                self.wfile.write(piece)
                left -= len(piece)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        if declared is None or declared != size:
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        path = self.path.split("?", 1)[0]
        if path == "/c/big.mp4":
            self._body(SIZE, SIZE)
        elif path == "/c/small.mp4":
            self._body(1000, 1000)
        elif path == "/c/truncated.mp4":
            self._body(5 * 1024 * 1024, SIZE)
        elif path == "/c/nolength.mp4":
            self._body(1000, None)
        elif path in ("/c/expired.mp4", "/c/gone.mp4"):
            status = 403 if "expired" in path else 404
            body = b"<?xml version='1.0'?><Error><Code>AuthenticationFailed</Code></Error>"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.fixture
def storage() -> Iterator[str]:
    _Handler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _client(endpoint: str = "https://eastus.api.cognitive.microsoft.com") -> BatchAvatarClient:
    return BatchAvatarClient(Pipeline(endpoint, auth=KeyAuth(KEY)))


def fetch(url: str, dest: Path, *, expected_size: int | None = None) -> int:
    client = _client()
    try:
        return download(client.stream, url, dest, expected_size=expected_size, shown=safe_url(url))
    finally:
        client.pipeline.close()


def test_stream_yields_the_declared_length_and_chunks(storage: str) -> None:
    client = _client()
    with client.stream(f"{storage}/c/small.mp4?{SAS}", chunk_size=300) as (length, chunks):
        sizes = [len(c) for c in chunks]
    with client.stream(f"{storage}/c/nolength.mp4?{SAS}") as (unknown, rest):
        assert unknown is None and sum(len(c) for c in rest) == 1000
    client.pipeline.close()
    assert length == 1000 and sum(sizes) == 1000 and max(sizes) <= 300 and len(sizes) >= 4


def test_streams_20_mb_with_flat_memory(storage: str, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "0001.mp4"
    tracemalloc.start()
    try:
        size = fetch(f"{storage}/c/big.mp4?{SAS}", dest, expected_size=SIZE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == SIZE == dest.stat().st_size
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == _stream_digest(SIZE)
    assert _leftovers(dest.parent) == ["0001.mp4"]
    print(f"\ndownload of {SIZE >> 20} MiB: tracemalloc peak {peak / 2**20:.2f} MiB")
    assert peak < 6 * 2**20, f"peak {peak} bytes: the download is not streamed"


def test_truncated_response_leaves_nothing(storage: str, tmp_path: Path) -> None:
    dest = tmp_path / "0001.mp4"
    with pytest.raises(DownloadError) as info:
        fetch(f"{storage}/c/truncated.mp4?{SAS}", dest)
    assert not isinstance(info.value, ResultExpiredError)
    assert _leftovers(tmp_path) == []
    assert "sig=" not in str(info.value) and "SASSECRET" not in str(info.value)


def test_size_mismatch_removes_part(storage: str, tmp_path: Path) -> None:
    dest = tmp_path / "0001.mp4"
    with pytest.raises(DownloadError, match="expected size is 2000"):
        fetch(f"{storage}/c/nolength.mp4?{SAS}", dest, expected_size=2000)
    assert _leftovers(tmp_path) == []
    with pytest.raises(DownloadError, match="differs from the expected"):
        fetch(f"{storage}/c/small.mp4?{SAS}", dest, expected_size=999)
    assert _leftovers(tmp_path) == []
    assert fetch(f"{storage}/c/nolength.mp4?{SAS}", dest, expected_size=1000) == 1000


def test_existing_file_is_kept_when_download_fails(storage: str, tmp_path: Path) -> None:
    dest = tmp_path / "0001.mp4"
    dest.write_bytes(b"previous good file")
    with pytest.raises(DownloadError):
        fetch(f"{storage}/c/truncated.mp4?{SAS}", dest)
    assert dest.read_bytes() == b"previous good file"
    assert _leftovers(tmp_path) == ["0001.mp4"]


@pytest.mark.parametrize("name", ["expired", "gone"])
def test_403_404_mean_result_expired(storage: str, tmp_path: Path, name: str) -> None:
    with pytest.raises(ResultExpiredError) as info:
        fetch(f"{storage}/c/{name}.mp4?{SAS}", tmp_path / "x.mp4")
    assert "SASSECRET" not in str(info.value)
    assert _leftovers(tmp_path) == []


def test_server_error_and_refused_connection(storage: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="500"):
        fetch(f"{storage}/c/boom.mp4?{SAS}", tmp_path / "x.mp4")
    with pytest.raises(DownloadError, match="ConnectError"):
        fetch(f"http://127.0.0.1:1/c/x.mp4?{SAS}", tmp_path / "x.mp4")
    assert _leftovers(tmp_path) == []


def test_client_download_never_sends_key_to_storage(
    storage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert fetch(f"{storage}/c/small.mp4?{SAS}", tmp_path / "a.mp4") == 1000
    with pytest.raises(ResultExpiredError) as info:
        fetch(f"{storage}/c/expired.mp4?{SAS}", tmp_path / "b.mp4")
    (first, _) = _Handler.seen
    assert "ocp-apim-subscription-key" not in first and "authorization" not in first
    # Same origin (an emulator serving its own results): the key goes along.
    same = _client(storage)
    with same.stream(f"{storage}/c/small.mp4?{SAS}") as (_, chunks):
        assert sum(len(c) for c in chunks) == 1000
    same.pipeline.close()
    assert _Handler.seen[-1]["ocp-apim-subscription-key"] == KEY
    text = caplog.text + str(info.value)
    assert "HTTP Request" in caplog.text
    assert "fake-sas-signature-1" not in text and KEY not in text
