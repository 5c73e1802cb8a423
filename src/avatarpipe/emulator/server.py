"""Run the emulator with uvicorn in a background thread (tests, ``avatarpipe run``)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

import uvicorn

from avatarpipe.emulator.app import EmulatorApp, create_app
from avatarpipe.emulator.config import EmulatorConfig
from avatarpipe.emulator.rendering import Renderer
from avatarpipe.errors import AvatarpipeError, MediaError
from avatarpipe.media.ffmpeg import ffmpeg_exe

__all__ = ["EmulatorServer"]


class EmulatorServer:
    """An emulator served in-process on a background thread.

    Use it as a context manager; ``port=0`` picks a free port::

        with EmulatorServer(EmulatorConfig(port=0, state_dir=tmp)) as emu:
            httpx.get(f"{emu.url}/avatar/batchsyntheses", params=..., headers=...)
    """

    def __init__(self, config: EmulatorConfig, renderer: Renderer | None = None) -> None:
        """Prepare (not start) the server.

        Args:
            config: The emulator configuration.
            renderer: Render with this instead of the configured renderer.
        """
        self.config = config
        self.renderer = renderer
        self.app: EmulatorApp | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.url = ""

    def start(self, timeout_s: float = 30.0) -> EmulatorServer:
        """Bind, start serving and wait until the app is up.

        Args:
            timeout_s: How long to wait for start-up.

        Returns:
            ``self``.

        Raises:
            AvatarpipeError: The server did not start in time.
            OSError: The address cannot be bound.
        """
        # Find ffmpeg now, in the caller's thread. imageio-ffmpeg proves its binary by running it
        # in our process group and caches the answer, even a failure: found first by a render
        # thread while a terminal's Ctrl-C reaches the group, every later render would fail.
        with contextlib.suppress(MediaError):
            ffmpeg_exe()
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        self._sock = sock
        port = sock.getsockname()[1]
        self.app = create_app(self.config, self.renderer)
        self.app.resource.base_url = self.config.base_url(port)
        self.url = self.app.resource.base_url
        uv_config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(uv_config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="emulator-uvicorn",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise AvatarpipeError("the emulator did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving, stop the workers and close the database."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
