"""
Readiness: can this process deliver events now?

``GET /healthz`` says the event loop answers (liveness); ``GET /readyz``
says whether a load balancer should send clients here: 200 when the relay
is reading the Redis stream, its canary comes back through it, and the
database answered the last sweep, else
503 with a JSON body naming each problem, so a process that would accept
sockets and deliver nothing live is taken out of rotation.
"""

from __future__ import annotations

import json

from .canary import Canary
from .reconcile import Sweeper

__all__ = ["Readiness"]


class Readiness:
    def __init__(self, sweeper: Sweeper, canary: Canary) -> None:
        self.sweeper = sweeper
        self.canary = canary

    def problems(self) -> list[str]:
        """What keeps this process from delivering, in words; empty if nothing."""
        problems = []
        if not self.sweeper.relay_connected.is_set():
            problems.append("redis: the relay is not reading the stream")
        elif self.canary.overdue():
            problems.append("redis: what is published does not come back")
        if not self.sweeper.database_ok:
            problems.append("database: unavailable")
        return problems

    def report(self) -> tuple[bool, str]:
        """Ready or not, and the JSON body that says why."""
        problems = self.problems()
        body = {"ready": not problems, "problems": problems}
        return not problems, json.dumps(body) + "\n"
