"""
What fault tolerance costs a ws_server process, measured on its own queries.

* The periodic re-check: every open connection is authenticated again once
  per ``NOTIFICATIONS_RECHECK_INTERVAL``, in batches of the re-checker's
  size. This times one full round over N sessions (the same
  ``authenticate_sessions`` the server runs, in the same batches) and counts
  its queries, so the cost at N connections is round time / interval.
* The reconciliation sweep on an idle process: one ``event_ids_after``
  query per ``NOTIFICATIONS_SWEEP_INTERVAL``, over an event table of the
  given size with a handful of gaps.

Runs against its own database (DATABASE_URL), with the benchmark's users.

    python -m bench.recheck --connections 10000 --output recheck.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import django


def measure_recheck(keys: list[str], repeats: int) -> dict[str, Any]:
    """Time full re-check rounds over ``keys``, batched as the server does."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from ws_server.auth import authenticate_sessions
    from ws_server.maintenance import BATCH_SIZE

    rounds, queries = [], 0
    for _ in range(repeats):
        connection.queries_log.clear()  # DEBUG keeps at most 9,000
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            for start in range(0, len(keys), BATCH_SIZE):
                results = authenticate_sessions(keys[start : start + BATCH_SIZE])
                assert all(hasattr(r, "user_id") for r in results.values())
        rounds.append(time.perf_counter() - started)
        queries = len(captured)
    median = statistics.median(rounds)
    return {
        "connections": len(keys),
        "batch_size": BATCH_SIZE,
        "round_s": round(median, 3),
        "per_batch_ms": round(1000 * median / -(-len(keys) // BATCH_SIZE), 2),
        "queries_per_round": queries,
        "core_share_at_60s": round(median / 60, 4),
    }


def measure_sweep(events: int, repeats: int) -> dict[str, Any]:
    """Time the idle sweep's query over a table of ``events`` events."""
    from django.db import connection

    from notifications import selectors
    from notifications.models import Event

    existing = Event.objects.count()
    Event.objects.bulk_create(
        [Event(title=f"sweep {i}") for i in range(existing, events)], batch_size=5_000
    )
    high = selectors.latest_event_id()
    # Holes below the newest id, as rolled-back transactions leave them.
    gaps = [high - 10, high - 100, high - 1_000]
    Event.objects.filter(pk__in=gaps).delete()
    if connection.vendor == "postgresql":
        # What autovacuum does to a table this size in production.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Event._meta.db_table}")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        assert selectors.event_ids_after(after=high, also=gaps, limit=1_000) == []
        times.append(time.perf_counter() - started)
    return {
        "events": events,
        "gaps": len(gaps),
        "query_ms": round(1000 * statistics.median(times), 3),
        # One query per sweep, two while there are gaps; a sweep each 0.5 s.
        "queries_per_s": "2 to 4",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", required=True)
    options = parser.parse_args()
    django.setup()
    from bench.fixtures import (
        activate_users,
        clear_events,
        create_sessions,
        create_users,
        prepare_database,
    )

    prepare_database()
    users = create_users(options.connections)
    activate_users(users, options.connections)
    keys = create_sessions(users)
    try:
        result = {
            "recheck": measure_recheck(keys, options.repeats),
            "sweep": measure_sweep(options.events, options.repeats * 20),
        }
    finally:
        clear_events()
    Path(options.output).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
