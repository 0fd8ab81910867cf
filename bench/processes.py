"""
Every process the benchmark starts, stopped whatever happens.

Children run in their own session, so a Ctrl-C in the terminal reaches only
the orchestrator, which then stops them in order (SIGTERM, then SIGKILL after
a bounded wait) from a ``finally``. Each child's output goes to a log file
under the run directory, and readiness is a line in that log.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Self

import psutil

from scripts.processes import stop_processes

__all__ = ["Child", "Children"]

STOP_TIMEOUT = 8.0


class Child:
    """One child process with its log file."""

    def __init__(self, name: str, popen: subprocess.Popen[str], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.process = psutil.Process(popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_for_log(self, pattern: str, timeout: float, count: int = 1) -> None:
        """Wait for ``count`` lines matching ``pattern``; fail if the child dies."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log_path
            text = log.read_text(errors="replace") if log.exists() else ""
            if len(regex.findall(text)) >= count:
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.name} did not log {pattern!r} within {timeout}s "
            f"(exit code {self.popen.poll()}); end of {self.log_path}:\n{self.log_tail()}"
        )

    def wait_for_port(self, port: int, timeout: float) -> None:
        """Wait until 127.0.0.1:``port`` accepts connections."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.popen.poll() is None:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.name} did not listen on port {port} within {timeout}s; "
            f"end of {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(
            self.log_path.read_text(errors="replace").splitlines()[-lines:]
        )

    def tree(self) -> list[psutil.Process]:
        """The process and its children (``--workers`` forks them)."""
        try:
            return [self.process, *self.process.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        """Resident memory of the whole process tree, in bytes."""
        return sum(_safe(lambda p: p.memory_info().rss, p) for p in self.tree())

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process tree so far."""
        return sum(_safe(lambda p: sum(p.cpu_times()[:2]), p) for p in self.tree())


class Children:
    """Start children and stop all of them on exit, even on Ctrl-C or error."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path,
        pipes: bool = False,
    ) -> Child:
        """Start ``command``; with ``pipes``, stdin/stdout are text pipes."""
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("w") as log:
            popen = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        child = Child(name, popen, log_path)
        self.children.append(child)
        return child

    def stop(self, *children: Child) -> None:
        """SIGTERM the given children (all by default), then SIGKILL laggards."""
        targets = list(children) or list(self.children)
        stop_processes([child.popen for child in targets], timeout=STOP_TIMEOUT)
        for child in targets:
            _close(child.popen.stdin, child.popen.stdout)
            if child in self.children:
                self.children.remove(child)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _safe(measure: object, process: psutil.Process) -> float:
    try:
        return measure(process)  # type: ignore[operator,no-any-return]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0


def _close(*streams: IO[str] | None) -> None:
    for stream in streams:
        if stream is not None:
            stream.close()
