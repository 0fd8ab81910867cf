"""The sweep, against a real database: one sweep at a time, each event once."""

import asyncio
import threading

import pytest
import redis.asyncio as aioredis
from django.db import OperationalError

from notifications import services
from ws_server import reconcile
from ws_server.canary import Canary
from ws_server.core import Core
from ws_server.db import DatabaseUnavailable, run_orm
from ws_server.delivery import Dispatcher
from ws_server.ledger import Ledger
from ws_server.readiness import Readiness
from ws_server.reconcile import Sweeper
from ws_server.revocations import Revocations

# The sweep queries from ORM threads: they must see the test's commits.
pytestmark = pytest.mark.django_db(transaction=True)


def sweeper() -> Sweeper:
    core = Core(
        ledger=Ledger(),
        revocations=Revocations(horizon=60),
        pending_limit=1_000,
        resume_limit=200,
        doubt_timeout=25,
    )
    dispatcher = Dispatcher(core, max_buffer=1 << 20)
    return Sweeper(dispatcher, asyncio.Event(), interval=60, gap_timeout=5)


def test_a_catch_up_during_a_sweep_waits_for_it(monkeypatch):
    """The relay's catch-up after an outage used to run beside the periodic
    sweep, and the one that finished first pulled the other's missing ids
    from under it (KeyError: the server stopped, closing every socket with
    1001). Now the second waits: every event is delivered once, no error."""
    ids = [services.send_event(title=f"e{n}").pk for n in range(3)]
    loading, release = threading.Event(), threading.Event()
    load_events = reconcile._load_events

    def held_load(event_ids):
        loading.set()
        assert release.wait(5), "the test never released the sweep"
        return load_events(event_ids)

    monkeypatch.setattr(reconcile, "_load_events", held_load)

    async def scenario() -> tuple[int, int]:
        sweeps = sweeper()
        periodic = asyncio.create_task(sweeps.sweep())
        await asyncio.to_thread(loading.wait, 5)
        monkeypatch.setattr(reconcile, "_load_events", load_events)
        catch_up = asyncio.create_task(sweeps.catch_up(missing_since=0.0))
        await asyncio.sleep(0.2)
        release.set()
        (swept, _full) = await periodic
        return swept, await catch_up

    swept, caught_up = asyncio.run(scenario())
    assert (swept, caught_up) == (len(ids), 0)


def test_readiness_follows_the_sweep_not_every_query(monkeypatch):
    """Any failed query used to mark the database down until the next one
    succeeded, so one slow handshake query made /readyz flap. Now readiness
    follows the sweep alone: not ready before the first sweep, ready after
    it whatever other queries do, not ready while sweeps fail, ready again
    after the next one that works."""
    event_ids_after = reconcile.selectors.event_ids_after

    def unreachable(**kwargs):
        raise OperationalError("connection refused")

    async def scenario() -> list[list[str]]:
        sweeps = sweeper()
        sweeps.relay_connected.set()
        # A canary that has sent nothing is never overdue.
        idle = Canary(
            aioredis.Redis(),
            "unused",
            sweeps.relay_connected,
            interval=1,
            timeout=1,
            maxlen=1,
        )
        readiness = Readiness(sweeps, idle)
        seen = [readiness.problems()]
        await sweeps.tick()
        with pytest.raises(DatabaseUnavailable):
            await run_orm(unreachable)
        seen.append(readiness.problems())
        monkeypatch.setattr(reconcile.selectors, "event_ids_after", unreachable)
        await sweeps.tick()
        seen.append(readiness.problems())
        monkeypatch.setattr(reconcile.selectors, "event_ids_after", event_ids_after)
        await sweeps.tick()
        seen.append(readiness.problems())
        return seen

    unavailable = ["database: unavailable"]
    assert asyncio.run(scenario()) == [unavailable, [], unavailable, []]
