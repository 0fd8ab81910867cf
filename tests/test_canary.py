"""The relay's canary against a real Redis: sent, read back, overdue."""

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from notifications.broker import stream_key
from notifications.wire import Canary as CanaryMessage
from notifications.wire import decode_redis
from ws_server.canary import Canary


def canary(client: aioredis.Redis, *, timeout: float = 0.2) -> Canary:
    return Canary(
        client, stream_key(), asyncio.Event(), interval=1, timeout=timeout, maxlen=100
    )


async def read_back(client: aioredis.Redis, sender: Canary) -> list[CanaryMessage]:
    """Every canary in the stream, handed back to ``sender`` as the relay does."""
    messages = [
        decode_redis(fields[b"m"]) for _id, fields in await client.xrange(stream_key())
    ]
    for message in messages:
        sender.returned(message)
    return messages


def test_a_canary_read_back_is_answered_and_one_that_isnt_is_overdue(private_redis):
    async def scenario() -> None:
        client = aioredis.Redis.from_url(private_redis.url)
        try:
            ours, theirs = canary(client), canary(client)
            await ours.send()
            assert not ours.overdue()
            [message] = await read_back(client, theirs)
            assert message == CanaryMessage(process=ours.process, sequence=1)
            await asyncio.sleep(0.3)
            assert ours.overdue(), "unanswered past its timeout"
            assert not theirs.overdue(), "another process's canary is not ours"
            await read_back(client, ours)
            assert not ours.overdue()
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_only_canaries_sent_since_a_moment_can_condemn_a_connection(private_redis):
    """The relay reconnects after a lost canary; the ones lost before it
    reconnected don't make it reconnect again at once (readiness still
    counts them until a canary comes back)."""

    async def scenario() -> None:
        client = aioredis.Redis.from_url(private_redis.url)
        try:
            sender = canary(client)
            await sender.send()
            await asyncio.sleep(0.3)
            reconnected = time.monotonic()
            assert sender.overdue()
            assert not sender.overdue(sent_since=reconnected)
            await sender.send()
            assert not sender.overdue(sent_since=reconnected)
            await asyncio.sleep(0.3)
            assert sender.overdue(sent_since=reconnected)
            await read_back(client, sender)  # the newest back: all earlier ones too
            assert not sender.overdue()
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_a_canary_that_cannot_be_sent_stays_unanswered(private_redis):
    """Redis down: the send fails quietly and the canary turns overdue."""

    async def scenario() -> None:
        client = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
        try:
            sender = canary(client)
            await sender.send()
            await asyncio.sleep(0.3)
            assert sender.overdue()
        finally:
            await client.aclose()

    asyncio.run(scenario())


pytestmark = pytest.mark.usefixtures("redis_prefix")
