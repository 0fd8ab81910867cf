"""The relay's decoding of stream entries: a bad entry is dropped, never fatal."""

import asyncio
import logging
import time

import pytest
import redis.asyncio as aioredis

from notifications import wire
from notifications.broker import stream_key
from ws_server import reconcile
from ws_server.canary import Canary
from ws_server.core import Core
from ws_server.delivery import Dispatcher
from ws_server.ledger import Ledger
from ws_server.readiness import Readiness
from ws_server.reconcile import Sweeper
from ws_server.relay import Relay, _decode
from ws_server.revocations import Revocations


@pytest.mark.parametrize(
    "raw",
    [
        b'{"v": 1, "type": "user_changed", "user": 1e400}',  # int(inf)
        b'{"v": 1, "type": "user_changed"}',
        b'{"v": 1, "type": "event", "event": {}, "audience": null}',
        b"[1]",
        b"[" * 3_000,
        b"\xff",
    ],
)
def test_a_malformed_entry_is_dropped_and_logged(raw, caplog):
    """Whatever a Redis writer put in an entry, the relay logs it and goes on."""
    assert _decode(raw) is None
    assert "dropped a malformed Redis message" in caplog.text


def test_a_closed_transport_is_a_redis_connection_error():
    """uvloop's RuntimeError for a write on a transport Redis reset becomes a
    ConnectionError, which the loops ride out; other errors pass unchanged."""
    import asyncio

    from redis.exceptions import ConnectionError as RedisConnectionError

    from ws_server.redis_calls import redis_call

    async def closed() -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

    async def broken() -> None:
        raise ValueError("ours")

    with pytest.raises(RedisConnectionError, match="connection closed"):
        asyncio.run(redis_call(closed()))
    with pytest.raises(ValueError, match="ours"):
        asyncio.run(redis_call(broken()))


def test_an_out_of_range_event_id_is_dropped_with_one_line(caplog):
    """A huge event id from Redis is dropped and logged in one line, with no
    traceback: it is bad input, not a bug of the relay."""
    raw = wire.encode_event({"id": 10**30}, wire.AudienceSpec(everyone=True))
    assert _decode(raw) is None
    [record] = caplog.records
    assert "dropped a malformed Redis message" in record.getMessage()
    assert "event id" in record.getMessage()
    assert record.exc_info is None


#: The canary's timeout in the recovery test, and a recovery three times longer.
CANARY_TIMEOUT = 0.5
SLOW_RECOVERY = 1.5
#: A well-formed entry that delivers nothing (another process's canary).
OTHERS_CANARY = wire.encode_canary("another process", 1)


@pytest.mark.django_db(transaction=True)
def test_a_recovery_longer_than_the_canary_timeout_condemns_nothing(
    private_redis, monkeypatch, caplog
):
    """The relay finds the stream trimmed past it and catches up from a slow
    database (1.5 s, three canary timeouts) while Redis stays healthy: the
    canaries it couldn't read meanwhile used to make it drop the connection
    and recover a second time, and /readyz said published events don't come
    back. Now there is one recovery and readiness never blames Redis."""
    caplog.set_level(logging.INFO, logger="ws_server.relay")
    event_ids_after = reconcile.selectors.event_ids_after

    def slow_event_ids_after(**kwargs: object) -> list[int]:
        time.sleep(SLOW_RECOVERY)
        return event_ids_after(**kwargs)

    async def scenario() -> list[list[str]]:
        client = aioredis.Redis.from_url(private_redis.url)
        await client.xadd(stream_key(), {"m": OTHERS_CANARY})
        sweeper = Sweeper(
            Dispatcher(
                Core(
                    ledger=Ledger(),
                    revocations=Revocations(horizon=60),
                    pending_limit=1_000,
                    resume_limit=200,
                    doubt_timeout=25,
                ),
                max_buffer=1 << 20,
            ),
            asyncio.Event(),
            interval=60,
            gap_timeout=5,
        )
        canary = Canary(
            client,
            stream_key(),
            sweeper.relay_connected,
            interval=0.1,
            timeout=CANARY_TIMEOUT,
            maxlen=100,
        )
        relay = Relay(
            private_redis.url, stream_key(), sweeper.dispatcher, sweeper, canary
        )
        readiness = Readiness(sweeper, canary)
        tasks = [asyncio.create_task(relay.run()), asyncio.create_task(canary.run())]
        try:
            await asyncio.wait_for(sweeper.relay_connected.wait(), 5)
            monkeypatch.setattr(
                reconcile.selectors, "event_ids_after", slow_event_ids_after
            )
            # One entry, and every older one trimmed at once: the relay's
            # next read finds the stream trimmed past what it read.
            async with client.pipeline(transaction=True) as pipe:
                pipe.xadd(stream_key(), {"m": OTHERS_CANARY})
                pipe.xtrim(stream_key(), maxlen=1, approximate=False)
                await pipe.execute()
            problems = []
            for _ in range(int((SLOW_RECOVERY + 4 * CANARY_TIMEOUT) / 0.05)):
                problems.append(readiness.problems())
                await asyncio.sleep(0.05)
            return problems
        finally:
            for task in tasks:
                task.cancel()
            # Bounded: a loop that swallowed its cancellation fails the test.
            async with asyncio.timeout(5):
                await asyncio.gather(*tasks, return_exceptions=True)
            await client.aclose()

    problems = asyncio.run(scenario())
    recoveries = [r for r in caplog.records if r.msg == "re-checking %d connection(s)"]
    assert len(recoveries) == 1, caplog.text
    assert "Redis connection lost" not in caplog.text
    blamed = "redis: what is published does not come back"
    assert not [answer for answer in problems if blamed in answer]
