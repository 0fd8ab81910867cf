"""The relay's decoding of stream entries: a bad entry is dropped, never fatal."""

import pytest

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
