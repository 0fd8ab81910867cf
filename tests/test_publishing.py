"""Publishing happens after commit, never for rolled-back work, never raising."""

import logging

from django.db import transaction
from django.test import TestCase, override_settings

from notifications import services, wire
from notifications.broker import get_redis, stream_key


def stream_messages() -> list[wire.RedisMessage]:
    return [wire.decode_redis(f["m"]) for _id, f in get_redis().xrange(stream_key())]


class PublishOnCommitTests(TestCase):
    def setUp(self) -> None:
        get_redis().delete(stream_key())

    def test_event_is_published_after_commit(self) -> None:
        """Nothing reaches Redis until the transaction commits; then one message."""
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            event = services.send_event(title="committed")
            assert stream_messages() == []
        assert len(callbacks) == 1
        [message] = stream_messages()
        assert isinstance(message, wire.EventMessage)
        assert message.event_id == event.pk

    def test_rolled_back_event_is_never_published(self) -> None:
        """An event created in a transaction that rolls back publishes nothing."""
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            try:
                with transaction.atomic():
                    services.send_event(title="rolled back")
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
        assert callbacks == []
        assert stream_messages() == []

    @override_settings(REDIS_URL="redis://127.0.0.1:1/0")
    def test_redis_outage_does_not_fail_the_request(self) -> None:
        """With Redis unreachable, sending still succeeds and logs a warning."""
        get_redis.cache_clear()
        try:
            with (
                self.assertLogs("notifications.publishing", logging.WARNING) as logs,
                self.captureOnCommitCallbacks(execute=True),
            ):
                event = services.send_event(title="saved anyway")
        finally:
            get_redis.cache_clear()
        assert "publish to Redis failed" in logs.output[0]
        assert event.pk is not None
