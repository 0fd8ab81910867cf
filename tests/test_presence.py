"""
Presence from Django's side against a real Redis that stops answering: it
degrades to "nobody known to be online", within its bound, and never raises
into the caller.
"""

import logging
import time

from django.test import override_settings

from notifications import presence

#: Two round trips of NOTIFICATIONS_PUBLISH_TIMEOUT each, plus slack for a
#: loaded machine.
BOUND = 1.0
#: The circuit breaker's pause after a failure, shortened for the test.
COOLDOWN = 0.5


def outage_lines(caplog, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


@override_settings(NOTIFICATIONS_PUBLISH_COOLDOWN=COOLDOWN)
def test_a_stopped_redis_makes_presence_unknown_not_an_error(private_redis, caplog):
    """Redis stopped (SIGSTOP), so it accepts and never answers: is_online()
    answers False and online() says unavailable, each within its bound, and
    the outage is logged once however often they are asked, and its end once
    Redis answers again."""
    caplog.set_level(logging.INFO, logger="notifications.presence")
    assert presence.is_online(1) is False  # Redis answers: nobody connected
    private_redis.pause()
    try:
        for _ in range(3):
            started = time.monotonic()
            assert presence.is_online(1) is False
            online = presence.online()
            assert (online.available, online.connections) == (False, {})
            assert time.monotonic() - started < BOUND
    finally:
        private_redis.resume()
    assert outage_lines(caplog, "presence unknown") == 1
    deadline = time.monotonic() + COOLDOWN + BOUND
    while not presence.online().available:
        assert time.monotonic() < deadline, "presence still unknown"
        time.sleep(0.05)
    assert outage_lines(caplog, "presence known again") == 1
