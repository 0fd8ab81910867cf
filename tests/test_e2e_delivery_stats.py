"""
End to end: delivery statistics. Clients acknowledge what they receive; each
ws_server process records its own clients' acknowledgements in batches, and
the admin shows recipients, live deliveries, reads and dismissals.
"""

import time

import pytest
from django.test import Client

from notifications import selectors, services
from notifications.models import Audience
from tests.clients import receive, send_json, subscriber
from tests.factories import make_user
from tests.servers import WebSocketServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: The acknowledgement batches are written once a second.
FLUSH_BOUND = 2.5


def stats_within(event_id: int, expected: dict[str, int]) -> selectors.DeliveryStats:
    """The event's statistics once they match ``expected`` (fail past the bound)."""
    started = time.monotonic()
    while True:
        stats = selectors.delivery_stats(event_id=event_id)
        if all(getattr(stats, name) == value for name, value in expected.items()):
            return stats
        assert time.monotonic() - started < FLUSH_BOUND, stats
        time.sleep(0.1)


def test_counters_match_what_clients_did_across_two_processes(ws_server, redis_prefix):
    """Two of three recipients acknowledge (on two processes, one twice from two
    tabs), one reads, one dismisses: the counters say exactly that."""
    alice, bob, carol = make_user(), make_user(), make_user()
    admin = make_user(staff=True, is_superuser=True)
    with (
        WebSocketServerProcess(redis_prefix=redis_prefix) as second,
        subscriber(ws_server, alice) as alice_tab,
        subscriber(second, alice) as alice_other_tab,
        subscriber(second, bob) as bob_tab,
    ):
        event = services.send_event(
            title="Counted", audience=Audience.USERS, users=[alice, bob, carol]
        )
        for tab in (alice_tab, alice_other_tab, bob_tab):
            assert receive(tab)["id"] == event.pk
            send_json(tab, {"type": "ack", "ids": [event.pk]})
        stats_within(event.pk, {"recipients": 3, "delivered": 2})
        send_json(alice_tab, {"type": "mark_read", "id": event.pk})
        send_json(bob_tab, {"type": "dismiss", "id": event.pk})
        stats = stats_within(event.pk, {"read": 1, "dismissed": 1})
    assert (stats.recipients, stats.delivered) == (3, 2)
    assert stats.first_read_at is not None
    browser = Client()
    browser.force_login(admin)
    page = browser.get(f"/admin/live_notifications/event/{event.pk}/change/")
    assert "3 recipients, 2 delivered live, 1 read (first" in page.content.decode()


def test_a_malformed_ack_gets_an_error_and_counts_nothing(ws_server):
    """An ack without ids is refused with an error frame; the connection stays."""
    alice = make_user()
    with subscriber(ws_server, alice) as ws:
        event = services.send_event(title="Counted")
        assert receive(ws)["id"] == event.pk
        send_json(ws, {"type": "ack", "ids": []})
        assert receive(ws)["code"] == "invalid_message"
        send_json(ws, {"type": "ack", "ids": [event.pk]})
        stats_within(event.pk, {"delivered": 1})
