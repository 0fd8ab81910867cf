"""
Every process the benchmark starts, stopped whatever happens.

Children run in their own session, so a Ctrl-C in the terminal reaches only
the orchestrator, which then stops them in order (SIGTERM, then SIGKILL after
a bounded wait) from a ``finally``. Each child's output goes to a log file
under the run directory, whose end is in every error about the child.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Self

import psutil

from scripts.probes import Answer, NotAnswered, wait_until
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

    def wait_until(
        self, check: Callable[[], Answer], what: str, timeout: float
    ) -> None:
        """Poll ``check`` (scripts/probes.py) until it passes; fail if the child dies."""
        try:
            wait_until(check, timeout=timeout, alive=lambda: self.popen.poll() is None)
        except NotAnswered as error:
            raise RuntimeError(
                f"{self.name} {what}: {error} (exit code {self.popen.poll()}); "
                f"end of {self.log_path}:\n{self.log_tail()}"
            ) from None

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
