"""End to end: read state across tabs, resume after a gap, and the resync limit."""

import threading

import pytest
from django.db import connection

from notifications import services
from tests.clients import receive, send_json, subscriber
from tests.factories import make_user
from tests.servers import WebSocketServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def send(count: int, **kwargs) -> list[int]:
    return [services.send_event(title=f"event {i}", **kwargs).pk for i in range(count)]


def send_from_thread(count: int) -> None:
    """Send from another thread, closing its database connection afterwards."""
    try:
        send(count)
    finally:
        connection.close()


def test_mark_read_in_one_tab_updates_the_other(ws_server):
    """Marking read over one socket pushes the new state and count to every tab within 1 s."""
    alice = make_user()
    with subscriber(ws_server, alice) as tab1, subscriber(ws_server, alice) as tab2:
        first, _second = send(2)
        for tab in (tab1, tab2):
            assert [receive(tab)["id"], receive(tab)["id"]] == [first, _second]
        send_json(tab1, {"type": "mark_read", "id": first})
        expected = {"type": "read", "ids": [first], "up_to": None, "unread": 1}
        assert receive(tab2, timeout=1) == expected
        assert receive(tab1, timeout=1) == expected
        send_json(tab2, {"type": "mark_all_read", "up_to": _second})
        assert receive(tab1, timeout=1) == {
            "type": "read",
            "ids": None,
            "up_to": _second,
            "unread": 0,
        }


def test_dismiss_reaches_every_tab(ws_server):
    """Dismissing over the socket tells every tab to drop the item, with the new count."""
    alice = make_user()
    with subscriber(ws_server, alice) as tab1, subscriber(ws_server, alice) as tab2:
        [event_id] = send(1)
        receive(tab1), receive(tab2)
        send_json(tab1, {"type": "dismiss", "id": event_id})
        assert receive(tab2) == {"type": "dismissed", "ids": [event_id], "unread": 0}


def test_offline_client_gets_everything_it_missed_in_order(ws_server):
    """A client that was away for 100 events gets all of them, in order, then live ones."""
    alice = make_user()
    [seen] = send(1)
    missed = send(100)
    with subscriber(ws_server, alice, last_id=seen) as ws:
        assert [frame["id"] for frame in ws.replayed] == missed
        [live] = send(1)
        assert receive(ws)["id"] == live


def test_welcome_counts_unread_after_the_replay(ws_server):
    """The welcome frame follows the replay and carries the authoritative unread count."""
    alice = make_user()
    ids = send(3)
    services.mark_read(user_id=alice.pk, event_id=ids[0])
    with subscriber(ws_server, alice, last_id=0) as ws:
        assert [frame["id"] for frame in ws.replayed] == ids
        assert ws.welcome["unread"] == 2
    with subscriber(ws_server, alice) as ws:
        assert (ws.replayed, ws.welcome["unread"]) == ([], 2)


def test_events_sent_during_resume_arrive_once_and_in_order(ws_server):
    """Live events racing the database replay are delivered once each, in id order."""
    alice = make_user()
    [seen] = send(1)
    send(20)
    sender = threading.Thread(target=send_from_thread, args=(30,))
    with subscriber(ws_server, alice, last_id=seen) as ws:
        sender.start()
        sender.join()
        frames = list(ws.replayed)
        while len(frames) < 50:
            frames.append(receive(ws, timeout=2))
    ids = [frame["id"] for frame in frames]
    assert ids == sorted(set(ids)), "a duplicate or out-of-order frame"
    assert len(ids) == 50


def test_too_large_a_gap_asks_for_a_resync(redis_prefix):
    """Past the resume limit the server sends "resync" instead of replaying everything."""
    alice = make_user()
    [seen] = send(1)
    send(6)
    env = {"NOTIFICATIONS_RESUME_LIMIT": "5"}
    with (
        WebSocketServerProcess(redis_prefix=redis_prefix, env=env) as server,
        subscriber(server, alice, last_id=seen) as ws,
    ):
        assert ws.replayed == [
            {"type": "resync", "reason": "too many missed notifications"}
        ]


def test_the_welcome_names_the_replayed_notifications_already_read(ws_server):
    """A replay carries no per-user state; the welcome says which replayed
    notifications the user read meanwhile (in another tab, say)."""
    alice = make_user()
    with subscriber(ws_server, alice) as ws:
        cursor = ws.welcome["cursor"]
    first = services.send_event(title="read elsewhere")
    second = services.send_event(title="still unread")
    services.mark_read(user_id=alice.pk, event_id=first.pk)
    with subscriber(ws_server, alice, last_id=cursor) as ws:
        assert [frame["id"] for frame in ws.replayed] == [first.pk, second.pk]
        assert ws.welcome["read"] == [first.pk]
        assert ws.welcome["unread"] == 1
