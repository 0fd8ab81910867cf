"""
Stop the child processes the scripts start: politely first, then by force.

Shared by the private Redis and the demo's servers so that every child gets the
same bounded shutdown: a script that is asked to stop must not hang on a child
that ignores SIGTERM.

Stdlib only: this runs before the project's virtualenv exists.
"""

import subprocess
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["stop_processes"]


def stop_processes(
    processes: Sequence[subprocess.Popen[Any]], timeout: float = 5.0
) -> None:
    """Send SIGTERM to every process, wait up to ``timeout`` in all, then SIGKILL.

    Signal them all before waiting on any, so their shutdowns overlap and the
    total wait is bounded by ``timeout`` rather than by ``timeout`` per process.
    """
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
