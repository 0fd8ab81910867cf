"""
What a phase costs a server in instructions, counted by callgrind: a figure
that doesn't move with whatever else the machine runs.

Handshakes a second and CPU milliseconds a handshake follow the load of the
rest of the machine, so on a shared 2-core machine a 10% difference between
two commits takes many repeats to confirm. ``--instructions`` runs each
server under ``valgrind --tool=callgrind`` with instrumentation off (the
server starts and idles at valgrind's plain speed), turns it on for the
connect and reconnect-storm phases only, and reads how many instructions the
process executed in them, every thread included: the interpreter, Django,
websockets, the database driver and SQLite (which runs in the process);
PostgreSQL's and Redis's own work are not in it. Divided by the handshakes
that succeeded, it is what one handshake costs the process.

Counting makes the server tens of times slower, so the run's other numbers
are not the benchmark's, and the plan keeps few handshakes in flight so
that none hits its deadline.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Self

__all__ = ["InstructionCounter", "under_callgrind"]

CALLGRIND_CONTROL_TIMEOUT = 120.0


def under_callgrind(command: list[str], output: Path) -> list[str]:
    """``command`` run by callgrind, counting nothing until told to."""
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--dump-instr=no",
        f"--callgrind-out-file={output}.%p",
        *command,
    ]


class InstructionCounter:
    """
    ``with InstructionCounter(pid, output) as counter:`` counts what process
    ``pid`` (started by :func:`under_callgrind` with ``output``) executes
    while the block runs; ``counter.instructions`` holds the count after it.
    """

    def __init__(self, pid: int, output: Path) -> None:
        self.pid = pid
        self.output = output
        self.instructions: int | None = None

    def __enter__(self) -> Self:
        self._control("--instr=on")
        return self

    def __exit__(self, *exc_info: object) -> None:
        dumped = set(self._dumps())
        self._control("--dump")
        self._control("--instr=off")
        (dump,) = set(self._dumps()) - dumped
        self.instructions = _total(dump)

    def _control(self, option: str) -> None:
        subprocess.run(
            ["callgrind_control", option, str(self.pid)],
            check=True,
            capture_output=True,
            timeout=CALLGRIND_CONTROL_TIMEOUT,
        )

    def _dumps(self) -> list[Path]:
        """The numbered dumps (``<output>.<pid>.<n>``) written so far."""
        return list(self.output.parent.glob(f"{self.output.name}.{self.pid}.*"))


def _total(dump: Path) -> int:
    """The instruction count a callgrind dump's ``totals:`` line gives."""
    for line in dump.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise ValueError(f"{dump}: no totals line")
