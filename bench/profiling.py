"""
Where the server's time goes: py-spy profiles of a phase, and their summary.

``--profile`` records the server under test with py-spy (sampling from
outside, ``--nonblocking`` so the server is never paused) during the connect
and burst phases, into collapsed-stack files under the run directory. The
summary ranks functions by the share of samples in which they are on the
stack (inclusive) and at its top (self), which is what the report quotes.
Profiled runs are slower: their numbers are not the benchmark's.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Self

REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["Profiler", "summarize"]

PY_SPY = Path(sys.executable).parent / "py-spy"


class Profiler:
    """``with Profiler(pid, path):`` records the process while the block runs."""

    def __init__(self, pid: int, output: Path, rate: int = 250) -> None:
        self.command = [
            str(PY_SPY), "record", "--pid", str(pid), "--format", "raw",
            "--output", str(output), "--rate", str(rate), "--nonblocking", "--threads",
            "--subprocesses",  # --workers: the supervisor's children do the work
        ]  # fmt: skip
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def summarize(path: Path, top: int = 25) -> dict[str, Any]:
    """Rank frames of a collapsed-stack file by inclusive and self samples."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        # Process labels carry the command line: no machine paths in results.
        frames = stack.replace(f"{REPO_ROOT}/", "").split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    share = 100 / max(total, 1)
    return {
        "samples": total,
        "inclusive": [
            (frame, round(n * share, 1)) for frame, n in inclusive.most_common(top)
        ],
        "self": [(frame, round(n * share, 1)) for frame, n in own.most_common(top)],
    }


def main() -> None:
    """``python -m bench.profiling FILE``: print a profile's summary."""
    summary = summarize(
        Path(sys.argv[1]), top=int(sys.argv[2]) if len(sys.argv) > 2 else 25
    )
    print(f"{summary['samples']} samples")
    for kind in ("inclusive", "self"):
        print(f"\n{kind}:")
        for frame, percent in summary[kind]:
            print(f"{percent:6.1f}%  {frame}")


if __name__ == "__main__":
    main()
