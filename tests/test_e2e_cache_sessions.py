"""Cache-backed sessions (in Redis): the socket accepts and revokes them as Django does."""

import pytest
from django.conf import settings
from django.test import override_settings

from tests.clients import close_of, logged_in_client, subscriber
from tests.factories import make_user
from tests.servers import WebSocketServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CACHE_ENGINE = "django.contrib.sessions.backends.cache"


@pytest.fixture
def cache_sessions_server(redis_prefix):
    """Django and a runwsserver that both keep sessions in a Redis cache."""
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.REDIS_URL,
            "KEY_PREFIX": redis_prefix,
        }
    }
    env = {"CACHE_URL": f"{settings.REDIS_URL}?KEY_PREFIX={redis_prefix}"}
    with (
        override_settings(SESSION_ENGINE=CACHE_ENGINE, CACHES=caches),
        WebSocketServerProcess(redis_prefix=redis_prefix, env=env) as server,
    ):
        yield server


def test_cache_session_authenticates_and_logout_closes(cache_sessions_server):
    """A cache session opens the socket; logging out closes it with 4003."""
    alice = make_user()
    browser = logged_in_client(alice)
    with subscriber(cache_sessions_server, alice, client=browser) as ws:
        assert ws.welcome["user"]["id"] == alice.pk
        browser.post("/accounts/logout/")
        assert close_of(ws, timeout=1) == (4003, "session ended")


def test_cache_session_of_deactivated_user_is_closed(cache_sessions_server):
    """Deactivating the user closes a socket opened with a cache session."""
    alice = make_user()
    with subscriber(cache_sessions_server, alice) as ws:
        alice.is_active = False
        alice.save()
        assert close_of(ws, timeout=1) == (4003, "session revoked")
