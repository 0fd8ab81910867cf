"""Cache-backed sessions (in Redis): the socket accepts and revokes them as Django does."""

import pytest
from django.conf import settings

from tests.clients import close_of, logged_in_client, subscriber
from tests.factories import make_user
from tests.servers import cache_sessions_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cache_server(redis_prefix):
    """Django and a runwsserver that both keep sessions in a Redis cache."""
    with cache_sessions_server(settings.REDIS_URL, redis_prefix) as server:
        yield server


def test_cache_session_authenticates_and_logout_closes(cache_server):
    """A cache session opens the socket; logging out closes it with 4003."""
    alice = make_user()
    browser = logged_in_client(alice)
    with subscriber(cache_server, alice, client=browser) as ws:
        assert ws.welcome["user"]["id"] == alice.pk
        browser.post("/accounts/logout/")
        assert close_of(ws, timeout=1) == (4003, "session ended")


def test_cache_session_of_deactivated_user_is_closed(cache_server):
    """Deactivating the user closes a socket opened with a cache session."""
    alice = make_user()
    with subscriber(cache_server, alice) as ws:
        alice.is_active = False
        alice.save()
        assert close_of(ws, timeout=1) == (4003, "session revoked")
