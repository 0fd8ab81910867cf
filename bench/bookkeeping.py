"""
What the delivery core keeps for each connection, in bytes.

    python -m bench.bookkeeping [--connections 10000]

Registers and routes that many connections (each its own user and session,
one group each) in a ``Core`` and reports the memory ``tracemalloc`` saw
allocated per connection: the core's and the hub's indexes and each
``Subscriber``, not the socket or websockets' connection (the benchmark's
KiB per idle connection measures everything). Deterministic, so two
commits compare in one line each; docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import argparse
import os
import tracemalloc

import django


def bytes_per_connection(connections: int) -> float:
    from ws_server.auth import Principal
    from ws_server.core import Core, Replay
    from ws_server.ledger import Ledger
    from ws_server.revocations import Revocations

    principals = [
        Principal(
            user_id=i,
            username=f"user{i}",
            is_staff=False,
            group_ids=frozenset({1}),
            session_key=f"key{i}",
            session_digest=f"digest{i}",
        )
        for i in range(connections)
    ]
    handles = [object() for _ in range(connections)]
    core = Core(
        ledger=Ledger(),
        revocations=Revocations(horizon=60),
        pending_limit=100,
        resume_limit=10,
        doubt_timeout=25,
    )
    nothing_missed = Replay(last_id=None, notifications=())
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for handle, principal in zip(handles, principals, strict=True):
        sub, _actions = core.register(handle, principal, 1.0, 1.0)
        core.replayed(sub, nothing_missed)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(core.hub) == connections
    return (after - before) / connections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    django.setup()
    size = bytes_per_connection(options.connections)
    print(f"{size:.0f} bytes a connection ({options.connections:,} connections)")


if __name__ == "__main__":
    main()
