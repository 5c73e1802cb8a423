"""How avatarpipe starts child processes so none outlives the run.

Every child the library starts (ffmpeg, the emulator's renders, a temporary
Prefect server) goes through :func:`child_process_kwargs`, which gives two
guarantees:

* **It dies with its parent.** On Linux the child asks the kernel for
  ``SIGKILL`` when the thread that started it exits (``prctl(PR_SET_PDEATHSIG)``),
  so even ``kill -9`` of the CLI leaves nothing running. Elsewhere this part is
  a no-op.
* **A terminal's Ctrl-C does not reach it.** The child runs in its own session
  (so its own process group), so the terminal's ``SIGINT`` goes to the CLI
  alone, which decides what to stop and how.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Collection
from typing import Any

__all__ = ["child_process_kwargs", "run_child", "stop_child", "terminate_children"]

_PR_SET_PDEATHSIG = 1
_live: dict[subprocess.Popen[Any], int] = {}  # run_child's children -> the thread waiting on it
_live_lock = threading.Lock()


def _load_prctl() -> Callable[..., int] | None:
    """Return libc's ``prctl`` on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] = libc.prctl
    return prctl


_PRCTL = _load_prctl()


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """Build the ``preexec_fn`` that ties a child's life to its parent.

    Args:
        parent_pid: The pid of the process starting the child; if it is already
            gone by the time the child runs, the child exits at once.

    Returns:
        A callable run in the child between fork and exec.
    """

    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)
        # A child inherits ignored signals; restore the defaults so it can be stopped.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return preexec


def child_process_kwargs() -> dict[str, Any]:
    """Keyword arguments for ``subprocess.Popen``/``run`` of any child process.

    The child gets its own session (a terminal's Ctrl-C does not reach it) and,
    on Linux, ``SIGKILL`` when its parent dies. Note that ``PR_SET_PDEATHSIG``
    follows the parent *thread*: start long-lived children from a thread that
    lives as long as they should.

    Returns:
        ``start_new_session`` and, on POSIX, ``preexec_fn``; an empty-ish dict
        elsewhere.
    """
    if os.name != "posix":
        return {}
    return {"start_new_session": True, "preexec_fn": _die_with_parent(os.getpid())}


def stop_child(proc: subprocess.Popen[Any], *, grace_s: float = 2.0) -> None:
    """Stop a child started with :func:`child_process_kwargs`, and its group.

    Sends ``SIGTERM`` to the child's process group, waits up to ``grace_s``,
    then ``SIGKILL``. Already-exited children are fine.

    Args:
        proc: The child.
        grace_s: Seconds to wait after ``SIGTERM`` before ``SIGKILL``.
    """
    if proc.poll() is not None:
        return
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def _signal_group(proc: subprocess.Popen[Any], sig: signal.Signals) -> None:
    """Send ``sig`` to the child's process group (or to the child elsewhere)."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_child(cmd: list[str], *, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to completion as a child (see :func:`child_process_kwargs`).

    Like ``subprocess.run(cmd, capture_output=True, check=False)``, but the
    child cannot outlive this process, does not get the terminal's Ctrl-C, and
    is killed (with its group) when the wait is interrupted (``KeyboardInterrupt``
    or any other exception) or times out.

    Args:
        cmd: The command line (never a shell string).
        timeout: Seconds before the child is killed.

    Returns:
        The completed process, with ``stdout``/``stderr`` captured as text.

    Raises:
        subprocess.TimeoutExpired: The child ran longer than ``timeout``.
        OSError: The program could not be started.
    """
    with subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **child_process_kwargs(),
    ) as proc:
        with _live_lock:
            _live[proc] = threading.get_ident()
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except BaseException:
            stop_child(proc, grace_s=0.5)
            raise
        finally:
            with _live_lock:
                _live.pop(proc, None)
        return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def terminate_children(threads: Collection[int] | None = None) -> int:
    """Kill the children :func:`run_child` is waiting on (and their groups), at once.

    The waiting :func:`run_child` calls then return a non-zero exit code (``-9``).

    Args:
        threads: Only the children started from these threads (``threading.get_ident()``);
            ``None`` for all of this process's.

    Returns:
        How many children were killed.
    """
    with _live_lock:
        procs = [p for p, t in _live.items() if threads is None or t in threads]
    for proc in procs:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)
    return len(procs)
