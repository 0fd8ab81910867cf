"""
Readiness: can this process deliver events now?

``GET /healthz`` says the event loop answers and the ORM threads aren't all
wedged (liveness); ``GET /readyz`` says whether a load balancer should send
clients here: 200 when the relay is reading the Redis stream, its canary
comes back through it, the database answered the last sweep and no ORM call
is stuck past its timeout, else 503 with a JSON body naming each problem, so
a process that would accept sockets and deliver nothing live is taken out of
rotation.
"""

from __future__ import annotations

import json
import logging

from . import db
from .canary import Canary
from .reconcile import Sweeper

__all__ = ["Readiness"]

logger = logging.getLogger(__name__)


class Readiness:
    def __init__(self, sweeper: Sweeper, canary: Canary) -> None:
        self.sweeper = sweeper
        self.canary = canary
        self._wedged = False

    def problems(self) -> list[str]:
        """What keeps this process from delivering, in words; empty if nothing."""
        problems = []
        if not self.sweeper.relay_connected.is_set():
            problems.append("redis: the relay is not reading the stream")
        elif self.canary.overdue():
            problems.append("redis: what is published does not come back")
        if not self.sweeper.database_ok:
            problems.append("database: unavailable")
        if stuck := db.stuck_calls():
            problems.append(
                f"database: {stuck} of {db.ORM_THREADS} ORM threads stuck in a call"
            )
        return problems

    def alive(self) -> bool:
        """
        Whether this process can still do its work if left alone: false once
        every ORM thread is wedged, which only a restart is sure to undo.
        Logged once each way, however often the orchestrator asks.
        """
        wedged = db.wedged()
        if wedged != self._wedged:
            self._wedged = wedged
            if wedged:
                logger.error(
                    "every ORM thread is stuck in a database call: /healthz fails"
                )
            else:
                logger.info("an ORM thread is free again: /healthz answers")
        return not wedged

    def report(self) -> tuple[bool, str]:
        """Ready or not, and the JSON body that says why."""
        problems = self.problems()
        body = {"ready": not problems, "problems": problems}
        return not problems, json.dumps(body) + "\n"
