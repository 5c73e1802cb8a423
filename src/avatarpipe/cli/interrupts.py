"""How ``avatarpipe run`` stops on Ctrl-C or SIGTERM: within seconds, one line, nothing left.

The first signal stops the run: the main thread gets ``KeyboardInterrupt`` (so nothing more is
submitted, and Prefect, the live display and the embedded emulator unwind), while a stopper
thread gives that unwinding :data:`GRACE_S` seconds, then removes the run's staging folders,
prints one line naming the jobs still in flight and ends the process (exit 130, or 143 for
SIGTERM) whether or not the unwinding is done. Jobs on the service are never cancelled: a rerun
re-attaches to them. A second Ctrl-C ends the process at once.

Ending with ``os._exit`` skips the interpreter's shutdown, which would otherwise wait for every
thread of every pool (a task still polling or downloading); child processes die with the process
(see :mod:`avatarpipe.processes`).

Prefect replaces the SIGTERM handler while a flow runs (it raises its own ``TerminationSignal``);
a wake-up file descriptor (``signal.set_wakeup_fd``) lets the stopper see every signal anyway.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from avatarpipe.publish.folder import OWNER_FILE, STAGING_GLOB, owned_here

__all__ = ["GRACE_S", "remove_staging", "stop_on_signals"]

GRACE_S = 1.5
"""Seconds the main thread gets to unwind after the first signal before the process ends."""

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Stopper:
    """The state of one run's signal handling (see the module docstring)."""

    def __init__(
        self, console: Console, message: Callable[[], str], cleanup: Callable[[], None]
    ) -> None:
        self.console = console
        self.message = message
        self.cleanup = cleanup
        self.signum: int | None = None
        self.unwound = threading.Event()
        self._lock = threading.Lock()
        self._ending = threading.Lock()
        self._thread: threading.Thread | None = None

    def begin(self, signum: int) -> bool:
        """Start stopping for ``signum``; False when a stop is already under way."""
        with self._lock:
            if self.signum is not None:
                return False
            self.signum = signum
        self._thread = threading.Thread(target=self._stop, name="avatarpipe-stop", daemon=True)
        self._thread.start()
        return True

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        """The SIGINT/SIGTERM handler (main thread).

        Raises:
            KeyboardInterrupt: The first signal: unwind the run.
        """
        if self.begin(signum):
            raise KeyboardInterrupt
        if signum == signal.SIGINT:
            self.end()  # a second Ctrl-C: at once
        # a repeated SIGTERM (Prefect re-sends its own): the stop is under way

    def _stop(self) -> None:
        self.unwound.wait(GRACE_S)
        self.end()

    def end(self) -> None:
        """Clean up, print the one line and end the process.

        Takes no lock another thread could hold (the line is written to the file descriptor,
        not through rich), so it cannot deadlock when a signal handler calls it; it returns
        only when the other caller is already ending the process.
        """
        if not self._ending.acquire(blocking=False):
            return  # the other caller is ending the process
        line = "interrupted"
        with contextlib.suppress(Exception):
            self.cleanup()
        with contextlib.suppress(Exception):
            line = self.message()
        with contextlib.suppress(Exception):
            lead = "\x1b[?25h\n" if self.console.is_terminal else ""  # show the cursor again
            os.write(self.console.file.fileno(), f"{lead}{line}\n".encode())
        os._exit(128 + (self.signum or signal.SIGINT))


@contextmanager
def stop_on_signals(
    console: Console, message: Callable[[], str], cleanup: Callable[[], None]
) -> Iterator[None]:
    """Handle Ctrl-C and SIGTERM for the duration of a run (main thread only).

    Inside, the first SIGINT or SIGTERM ends the process within :data:`GRACE_S` seconds plus the
    cleanup, with exit code 128 + the signal number; exceptions raised while unwinding are
    swallowed (the one line says what happened).

    Args:
        console: Where the one line goes.
        message: Builds the line (jobs in flight, how to resume); called once, at the end.
        cleanup: Removes what the run leaves half-done (staging folders); called once, before
            the line.

    Yields:
        Nothing; the run goes inside.
    """
    stopper = _Stopper(console, message, cleanup)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous: dict[int, Any] = {sig: signal.signal(sig, stopper.handle) for sig in _SIGNALS}
    old_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def watch() -> None:
        # Sees every signal, including those a foreign handler (Prefect's) takes.
        while True:
            try:
                data = os.read(read_fd, 16)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum in _SIGNALS:
                    stopper.begin(signum)

    watcher = threading.Thread(target=watch, name="avatarpipe-signals", daemon=True)
    watcher.start()
    try:
        yield
    except BaseException:
        if stopper.signum is None:
            raise
    finally:
        if stopper.signum is not None:
            stopper.unwound.set()
            while True:  # the stopper ends the process
                time.sleep(60)
        signal.set_wakeup_fd(old_wakeup)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(write_fd)  # ends the watcher (its read returns b"")
        watcher.join(timeout=1.0)
        os.close(read_fd)


def remove_staging(out_dir: Path, since: float) -> None:
    """Remove this run's staging folders (``<out>/<slug>/.<run-id>.partial``).

    A folder counts as this run's when its owner file names this process, or, for a folder
    without one, when it was made since ``since``; another run's live folder is never removed.

    Args:
        out_dir: The output root.
        since: A ``time.time()``; older staging folders belong to other runs.
    """
    for staging in out_dir.glob(f"*/{STAGING_GLOB}"):
        with contextlib.suppress(OSError):
            ours = owned_here(staging) or (
                not (staging / OWNER_FILE).exists() and staging.stat().st_mtime >= since
            )
            if ours:
                shutil.rmtree(staging, ignore_errors=True)
