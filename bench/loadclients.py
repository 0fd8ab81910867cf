"""
The orchestrator's handle on the load-client processes.

Each load client is a ``bench.loadclient`` process with its own share of the
connections and of the 127.0.0.x source addresses. A command goes to every
client first and the answers are read after, so the clients work in parallel.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.processes import Child, Children

__all__ = ["SOURCE_ADDRESSES", "LoadClients"]

#: Loopback only; eight addresses give ~8 x 28,000 ports to choose from.
SOURCE_ADDRESSES = [f"127.0.0.{i}" for i in range(2, 10)]


class LoadClients:
    def __init__(
        self,
        children: Children,
        *,
        count: int,
        name: str,
        url: str,
        sessions_file: Path,
        origin: str,
        deflate: bool,
        acknowledge: bool,
        env: dict[str, str],
        cwd: Path,
    ) -> None:
        self.children = children
        self.processes: list[Child] = []
        for k in range(count):
            addresses = SOURCE_ADDRESSES[k::count]
            command = [
                sys.executable, "-m", "bench.loadclient",
                "--url", url, "--sessions", str(sessions_file), "--origin", origin,
                "--addresses", ",".join(addresses),
            ]  # fmt: skip
            if deflate:
                command.append("--deflate")
            if acknowledge:
                command.append("--ack")
            self.processes.append(
                children.start(
                    f"{name}-client{k}", command, env=env, cwd=cwd, pipes=True
                )
            )

    def __len__(self) -> int:
        return len(self.processes)

    def ask(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send commands[k] to client k, then collect every answer."""
        for process, command in zip(self.processes, commands, strict=True):
            assert process.popen.stdin is not None
            process.popen.stdin.write(json.dumps(command) + "\n")
            process.popen.stdin.flush()
        return [self._answer(process) for process in self.processes]

    def ask_all(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        return self.ask([command] * len(self.processes))

    def ask_first(self, command: dict[str, Any]) -> dict[str, Any]:
        process = self.processes[0]
        assert process.popen.stdin is not None
        process.popen.stdin.write(json.dumps(command) + "\n")
        process.popen.stdin.flush()
        return self._answer(process)

    def _answer(self, process: Child) -> dict[str, Any]:
        assert process.popen.stdout is not None
        line = process.popen.stdout.readline()
        if not line:
            raise RuntimeError(
                f"load client {process.name} died; its log:\n{process.log_tail()}"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None and process.popen.stdin is not None:
                try:
                    process.popen.stdin.write('{"cmd": "exit"}\n')
                    process.popen.stdin.flush()
                except BrokenPipeError:
                    pass
        self.children.stop(*self.processes)
