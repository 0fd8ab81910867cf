"""
Turn raw observations into the reported numbers.

CPU: snapshots of each process's CPU seconds; a phase's CPU% is the seconds
used over the wall time (100% = one core). Latency: the load clients log
``(seq, connection, receipt time)`` for every frame; with the publisher's
stamps per seq, each (client, event) pair gets a latency, and duplicates and
losses are counted on exact pairs. Acknowledgements: the rows the server
marked delivered, read back from the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

__all__ = [
    "CpuMeter",
    "Deliveries",
    "load_deliveries",
    "summarize_recorded",
    "wait_for_quiet",
]

BUSY = "machine"


@dataclass(frozen=True)
class CpuSnapshot:
    wall: float
    seconds: dict[str, float]


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle, over all cores."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class CpuMeter:
    """CPU seconds of named processes, sampled at phase boundaries."""

    def __init__(self, sources: dict[str, Callable[[], float]]) -> None:
        self.sources = {**sources, BUSY: machine_busy_seconds}

    def snapshot(self) -> CpuSnapshot:
        return CpuSnapshot(
            time.monotonic(), {name: read() for name, read in self.sources.items()}
        )

    @staticmethod
    def percent(start: CpuSnapshot, end: CpuSnapshot) -> dict[str, float]:
        """
        CPU% of each process between two snapshots (100 = one core).

        ``other`` is what the rest of the machine used meanwhile: numbers
        taken while it is high are disturbed (two cores are all there is).
        """
        wall = max(end.wall - start.wall, 1e-9)
        used = {
            name: 100 * (end.seconds[name] - start.seconds[name]) / wall
            for name in start.seconds
        }
        busy = used.pop(BUSY)
        used["other"] = max(0.0, busy - sum(used.values()))
        return {name: round(value, 1) for name, value in used.items()}


def wait_for_quiet(threshold: float, max_wait: float) -> float:
    """
    Wait until the machine is nearly idle (below ``threshold`` % of one core
    over a second), at most ``max_wait`` s; return the last reading.

    Other work on a 2-core machine moves every number; waiting for a quiet
    moment before each measurement removes most of that noise.
    """
    deadline = time.monotonic() + max_wait
    while True:
        busy = psutil.cpu_percent(interval=1.0) * (psutil.cpu_count() or 1)
        if busy < threshold or time.monotonic() > deadline:
            return round(busy, 1)


@dataclass(frozen=True)
class Deliveries:
    """Every notification frame one phase delivered: seq, connection, time."""

    seq: np.ndarray
    conn: np.ndarray
    time: np.ndarray

    def summary(
        self, seqs: range, published: Sequence[float], connections: int
    ) -> dict[str, Any]:
        """
        Latency percentiles (ms), losses and duplicates for ``seqs``, whose
        step may interleave them with another phase's (``published[i]`` is
        when ``seqs[i]`` was published).
        """
        offset = self.seq - seqs.start
        in_phase = (offset >= 0) & (self.seq < seqs.stop) & (offset % seqs.step == 0)
        seq, conn, at = self.seq[in_phase], self.conn[in_phase], self.time[in_phase]
        expected = connections * len(seqs)
        unique = len(np.unique(seq * 1_000_000 + conn)) if len(seq) else 0
        stamps = np.asarray(published, dtype=float)
        index = offset[in_phase] // seqs.step
        latency = (at - stamps[index]) * 1000 if len(seq) else np.zeros(1)
        p50, p95, p99 = np.percentile(latency, [50, 95, 99])
        first_publish = float(stamps.min()) if len(stamps) else 0.0
        last_receipt = float(at.max()) if len(at) else first_publish
        span = max(last_receipt - first_publish, 1e-9)
        return {
            "events": len(seqs),
            "expected": expected,
            "received": len(seq),
            "losses": expected - unique,
            "duplicates": len(seq) - unique,
            "p50_ms": round(float(p50), 2),
            "p95_ms": round(float(p95), 2),
            "p99_ms": round(float(p99), 2),
            "max_ms": round(float(latency.max()), 2),
            "span_s": round(span, 4),
            "deliveries_per_s": round(len(seq) / span),
        }


def load_deliveries(paths: Sequence[Path]) -> Deliveries:
    """Read the load clients' dumps: raw float64 ``(seq, connection, time)``."""
    parts = [np.fromfile(path, dtype=np.float64).reshape(-1, 3) for path in paths]
    triples = np.concatenate(parts) if parts else np.zeros((0, 3))
    return Deliveries(
        seq=triples[:, 0].astype(np.int64),
        conn=triples[:, 1].astype(np.int64),
        time=triples[:, 2],
    )


def summarize_recorded(
    rows: int, updates: Sequence[tuple[int, float, float, int]]
) -> dict[str, Any]:
    """
    What the server wrote of the acknowledgements, out of ``rows`` inbox rows.

    ``updates`` has one ``(event id, delivered_at, event created_at, rows)``
    per event and time: the UPDATEs that changed rows, since a batch stamps
    every row it writes with one time (one UPDATE per event and 1,000
    users). Delays run from the ``send_event`` call to the batch that
    recorded the row; ``events_by_rows`` counts the events by how many of
    their rows were recorded, so a batch that dropped some shows.
    """
    if not updates:
        return {"rows": rows, "delivered": 0, "batches": 0, "updates": 0}
    event, at, created, counts = (
        np.asarray(column) for column in zip(*updates, strict=True)
    )
    batches, per_batch = np.unique(at, return_counts=True)
    _, by_event = np.unique(event, return_inverse=True)
    recorded, events = np.unique(
        np.bincount(by_event, weights=counts).astype(int), return_counts=True
    )
    p50, p99 = np.percentile(np.repeat(at - created, counts), [50, 99])
    return {
        "rows": rows,
        "delivered": int(counts.sum()),
        "events_by_rows": dict(zip(map(str, recorded), map(int, events), strict=True)),
        "batches": len(batches),
        "updates": len(updates),
        "most_updates_in_a_batch": int(per_batch.max()),
        "batches_span_s": round(float(batches[-1] - batches[0]), 2),
        "delay_p50_s": round(float(p50), 2),
        "delay_p99_s": round(float(p99), 2),
        "delay_max_s": round(float((at - created).max()), 2),
    }
