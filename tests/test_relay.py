"""The relay's decoding of stream entries: a bad entry is dropped, never fatal."""

import pytest

from notifications import wire
from ws_server.relay import _decode


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
