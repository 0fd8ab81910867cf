"""
What observability costs per call: a connection log line (plain and
LOG_FORMAT=json) and a metric update (one process, and prometheus-client's
multiprocess mode that ``runwsserver --workers`` uses).

``python -m bench.opscost`` prints microseconds per call, the best of five
rounds. A connection pays two log lines (opened, closed) and a few metric
updates; an event pays one histogram observation per process, and a
fan-out one counter update per run of frames, whatever the recipients.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

ROUNDS = 5
LOG_CALLS = 50_000
METRIC_CALLS = 200_000

#: The fields lifecycle.opened() attaches to its line.
FIELDS = {
    "event": "opened",
    "peer": "127.0.0.1:51234",
    "user": 42,
    "connection_id": "0b8a6c9e-7f0e-4b4e-9a57-0c1b6f3b2a11",
}


def per_call(call: Callable[[], object], calls: int) -> float:
    """Microseconds per call of ``call``, the best of ROUNDS rounds."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def log_line_cost(formatter: logging.Formatter) -> float:
    """Microseconds to format and write one connection line to /dev/null."""
    logger = logging.getLogger(f"bench.opscost.{id(formatter)}")
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        return per_call(
            lambda: logger.info(
                "opened %s: user %s by %s",
                FIELDS["peer"],
                FIELDS["user"],
                "session cookie",
                extra=FIELDS,
            ),
            LOG_CALLS,
        )
    finally:
        handler.close()


def metric_costs() -> str:
    """Microseconds per counter, histogram and gauge update, in this process."""
    from prometheus_client import Counter, Gauge, Histogram

    counter = Counter("bench_counter", "")
    histogram = Histogram("bench_histogram", "", buckets=(0.001, 0.01, 0.1, 1.0))
    gauge = Gauge("bench_gauge", "", multiprocess_mode="livesum")
    return (
        f"counter.inc {per_call(counter.inc, METRIC_CALLS):.2f} us, "
        f"histogram.observe {per_call(lambda: histogram.observe(0.03), METRIC_CALLS):.2f} us, "
        f"gauge.inc {per_call(gauge.inc, METRIC_CALLS):.2f} us"
    )


def main() -> None:
    if sys.argv[1:] == ["--metrics"]:
        print(metric_costs())
        return
    from pythonjsonlogger.json import JsonFormatter

    plain = logging.Formatter(
        "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
    )
    json_lines = JsonFormatter(
        ["asctime", "levelname", "process", "name", "message"],
        rename_fields={"asctime": "time", "levelname": "level"},
    )
    print(f"log line, plain: {log_line_cost(plain):.1f} us")
    print(f"log line, json:  {log_line_cost(json_lines):.1f} us")
    # Multiprocess mode is chosen when prometheus_client is imported: a
    # fresh interpreter for each mode.
    command = [sys.executable, "-m", "bench.opscost", "--metrics"]
    one = subprocess.run(command, capture_output=True, text=True, check=True)
    print(f"metrics, one process: {one.stdout.strip()}")
    with tempfile.TemporaryDirectory() as directory:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
        many = subprocess.run(
            command, capture_output=True, text=True, check=True, env=env
        )
    print(f"metrics, multiprocess: {many.stdout.strip()}")


if __name__ == "__main__":
    main()
