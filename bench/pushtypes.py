"""
The event types the benchmark pushes, declared as a project declares its own.

Standard library only: ``bench.suite`` puts the declaration in every
process's environment (``NOTIFICATIONS_EVENT_TYPES``) before Django starts.
"""

__all__ = ["DURABLE", "EVENT_TYPES", "LIVE"]

#: Sent to whoever is connected, never stored: what fan-out measures.
LIVE = "bench.live"
#: One row per push, replayed on resume: costs a request one INSERT more.
DURABLE = "bench.durable"

EVENT_TYPES = {LIVE: {"delivery": "live"}, DURABLE: {"delivery": "durable"}}
