"""
End to end: an admin retracts or deletes a sent event over HTTP; connected
recipients are told with a ``retracted`` push, and a resume no longer
replays it.
"""

import pytest
from django.test import Client

from notifications import services
from tests.clients import receive, subscriber
from tests.factories import make_user
from tests.pushes import next_push

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin_browser() -> Client:
    browser = Client()
    browser.force_login(make_user(staff=True, is_superuser=True))
    return browser


def retract_over_http(browser: Client, event_id: int) -> None:
    response = browser.post(
        "/admin/live_notifications/event/",
        {"action": "retract", "_selected_action": [event_id]},
    )
    assert response.status_code == 302


def delete_over_http(browser: Client, event_id: int) -> None:
    response = browser.post(
        f"/admin/live_notifications/event/{event_id}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302


@pytest.mark.parametrize("take_back", [retract_over_http, delete_over_http])
def test_an_open_page_is_told_to_remove_the_event(ws_server, admin_browser, take_back):
    """A recipient that received the event gets a retracted push naming it,
    within a second, whether the admin retracts or deletes it."""
    alice = make_user()
    with subscriber(ws_server, alice) as ws:
        event = services.send_event(title="sent by mistake")
        assert receive(ws)["id"] == event.pk
        take_back(admin_browser, event.pk)
        push = next_push(ws, timeout=1)
    assert (push["name"], push["data"]) == ("retracted", {"ids": [event.pk]})


def test_resume_after_a_retraction_replays_the_retraction_not_the_event(
    ws_server, admin_browser
):
    """A client away while an event was sent and retracted is replayed only
    the retraction."""
    alice = make_user()
    with subscriber(ws_server, alice) as ws:
        cursor = ws.welcome["cursor"]
    event = services.send_event(title="sent by mistake")
    retract_over_http(admin_browser, event.pk)
    with subscriber(ws_server, alice, last_id=cursor) as ws:
        replayed = [(frame["type"], frame.get("name")) for frame in ws.replayed]
        assert ws.welcome["unread"] == 0
    assert replayed == [("push", "retracted")]
