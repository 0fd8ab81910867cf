"""authenticate_sessions: Django's session rules, for many handshakes at once."""

import getpass
import shutil
import subprocess
import sys
import types

import pytest
from django.contrib.auth.models import Permission
from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError
from django.test import override_settings

from tests.clients import logged_in_client, session_key_of
from tests.factories import make_group, make_user
from tests.servers import free_port, wait_for_port
from ws_server.auth import AuthenticationFailed, Principal, authenticate_sessions

pytestmark = pytest.mark.django_db

CACHE_SESSIONS = {
    "SESSION_ENGINE": "django.contrib.sessions.backends.cache",
    "CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
}


def session_of(user) -> str:
    return session_key_of(logged_in_client(user))


def anonymous_session() -> str:
    store = SessionStore()
    store["cart"] = "not a login"
    store.create()
    return store.session_key


def refusals(results) -> dict[str, str]:
    return {
        key: str(result)
        for key, result in results.items()
        if isinstance(result, AuthenticationFailed)
    }


@pytest.mark.parametrize("engine", ["db", "cache"])
def test_each_key_gets_its_own_answer(engine, settings):
    """Good and bad sessions in one batch: each accepted or refused for its own reason."""
    if engine == "cache":
        settings.SESSION_ENGINE = CACHE_SESSIONS["SESSION_ENGINE"]
        settings.CACHES = CACHE_SESSIONS["CACHES"]
    team = make_group()
    alice = make_user(staff=True, groups=(team,))
    bob = make_user()
    leaver = make_user()
    changed = make_user()
    alice_key, bob_key = session_of(alice), session_of(bob)
    leaver_key, changed_key = session_of(leaver), session_of(changed)
    leaver.is_active = False
    leaver.save()
    changed.set_password("a new password")
    changed.save()
    anonymous_key = anonymous_session() if engine == "db" else "x" * 32
    keys = [alice_key, bob_key, leaver_key, changed_key, anonymous_key, "forged"]

    results = authenticate_sessions(keys)

    assert results[alice_key] == Principal(
        user_id=alice.pk,
        username=alice.username,
        is_staff=True,
        group_ids=frozenset({team.pk}),
        session_key=alice_key,
        session_digest=results[alice_key].session_digest,
        expires_at=results[alice_key].expires_at,
    )
    assert results[bob_key].group_ids == frozenset()
    assert refusals(results) == {
        leaver_key: "user is missing or inactive",
        changed_key: "session auth hash mismatch (password changed)",
        anonymous_key: "no authenticated session",
        "forged": "no authenticated session",
    }


# Cookies no Django session engine makes. With memcached, each one alone used
# to make get_many raise for the whole batch (locmem warns CacheKeyWarning for
# the first three, an error here, as memcached refuses them).
MALFORMED_KEYS = [
    "abcdefgh ijklmnop",  # a space
    "abcdefgh\x00\x07ijkl",  # control characters
    "a" * 300,  # longer than memcached's 250
    "s\u00e9ssion" * 4,  # not ASCII
    "ABCDEFGHIJKLMNOP",  # upper case
    "abc",  # shorter than SessionBase's 8
]


def assert_refused_alone(bad_key: str) -> None:
    """Authenticate a valid session beside ``bad_key``: only ``bad_key`` is refused."""
    key = session_of(make_user())
    results = authenticate_sessions([key, bad_key])
    assert isinstance(results[key], Principal)
    assert refusals(results) == {bad_key: "no authenticated session"}


@pytest.mark.parametrize("malformed", MALFORMED_KEYS)
@override_settings(**CACHE_SESSIONS)
def test_a_malformed_key_is_refused_alone_with_cache_sessions(malformed):
    """A malformed key in a batch of cache sessions is refused; the valid one still authenticates."""
    assert_refused_alone(malformed)


@pytest.mark.parametrize(
    "engine",
    ["db", "cache", "cached_db", "file"],
)
def test_malformed_keys_never_reach_any_session_engine(engine, settings, tmp_path):
    """Under every session engine, each malformed key is refused alone, the valid one accepted."""
    settings.SESSION_ENGINE = f"django.contrib.sessions.backends.{engine}"
    settings.CACHES = CACHE_SESSIONS["CACHES"]
    settings.SESSION_FILE_PATH = str(tmp_path)
    alice = make_user()
    key = session_of(alice)
    results = authenticate_sessions([key, *MALFORMED_KEYS])
    assert isinstance(results[key], Principal)
    assert refusals(results) == dict.fromkeys(
        MALFORMED_KEYS, "no authenticated session"
    )


BROKEN_KEY = "b" * 32
OUTAGE_KEY = "o" * 32


class FlakySessionStore(cached_db.SessionStore):
    """cached_db sessions, except that one key breaks the engine and one the database."""

    def load(self):
        if self.session_key == BROKEN_KEY:
            raise ValueError(f"engine bug for {self.session_key}")
        if self.session_key == OUTAGE_KEY:
            raise OperationalError("the database went away")
        return super().load()


@pytest.fixture
def flaky_engine(monkeypatch, settings):
    module = types.ModuleType("tests.flaky_session_engine")
    module.SessionStore = FlakySessionStore
    monkeypatch.setitem(sys.modules, module.__name__, module)
    settings.SESSION_ENGINE = module.__name__
    settings.CACHES = CACHE_SESSIONS["CACHES"]


@pytest.mark.usefixtures("flaky_engine")
def test_a_key_the_engine_raises_for_is_refused_alone(caplog):
    """Asked key by key, an engine that raises for one key refuses only that key, logging no key."""
    assert_refused_alone(BROKEN_KEY)
    [record] = [r for r in caplog.records if r.name == "ws_server.auth"]
    assert (
        record.getMessage()
        == "session engine raised ValueError for one key; refusing it"
    )
    assert BROKEN_KEY not in caplog.text


@pytest.mark.usefixtures("flaky_engine")
def test_a_database_error_for_one_key_fails_the_batch():
    """A database error is an outage, not a bad key: it propagates instead of refusing every session."""
    alice = make_user()
    with pytest.raises(OperationalError):
        authenticate_sessions([session_of(alice), OUTAGE_KEY])


@pytest.fixture
def memcached():
    """A memcached on a free port, for Django's PyMemcacheCache; skip without one."""
    pytest.importorskip("pymemcache")
    binary = shutil.which("memcached")
    if binary is None:
        pytest.skip("memcached is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", getpass.getuser()]
    )
    try:
        wait_for_port(port, timeout=5)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_malformed_keys_are_refused_alone_with_memcached(memcached, settings):
    """With sessions in a real memcached, malformed keys are refused and the valid one still authenticates."""
    settings.SESSION_ENGINE = CACHE_SESSIONS["SESSION_ENGINE"]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": memcached,
        }
    }
    alice = make_user()
    key = session_of(alice)
    results = authenticate_sessions([key, *MALFORMED_KEYS])
    assert isinstance(results[key], Principal)
    assert refusals(results) == dict.fromkeys(
        MALFORMED_KEYS, "no authenticated session"
    )


def test_database_sessions_expire_when_the_row_says(settings):
    """The connection is re-checked at the session's stored expiry, not an estimate."""
    alice = make_user()
    key = session_of(alice)
    store = SessionStore(key)
    store.set_expiry(60)
    store.save()
    [principal] = authenticate_sessions([key]).values()
    expected = SessionStore(key).get_expiry_date().timestamp()
    assert abs(principal.expires_at - expected) < 1


def test_an_expired_database_session_is_refused():
    alice = make_user()
    key = session_of(alice)
    store = SessionStore(key)
    store.set_expiry(-1)
    store.save()
    assert refusals(authenticate_sessions([key])) == {key: "no authenticated session"}


def test_a_batch_costs_the_same_few_queries_however_large(django_assert_num_queries):
    """Sessions, users, groups, and both kinds of permissions: five queries
    for twenty handshakes."""
    keys = [session_of(make_user(groups=(make_group(),))) for _ in range(20)]
    with django_assert_num_queries(5):
        results = authenticate_sessions(keys)
    assert not refusals(results)
    assert all(len(results[key].group_ids) == 1 for key in keys)


def test_permissions_are_loaded_as_model_backend_grants_them():
    """A principal holds its own and its groups' permissions; a superuser's flag
    stands for all of them."""
    editors = make_group()
    editors.permissions.add(permission("change_group"))
    user = make_user(groups=(editors,))
    user.user_permissions.add(permission("view_user"))
    admin = make_user(is_superuser=True)
    plain = make_user()
    results = authenticate_sessions([session_of(u) for u in (user, admin, plain)])
    by_user = {p.user_id: p for p in results.values()}
    assert by_user[user.pk].permissions == {"auth.change_group", "auth.view_user"}
    assert not by_user[user.pk].is_superuser
    assert by_user[admin.pk].is_superuser
    assert by_user[plain.pk].permissions == frozenset()


def permission(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="auth", codename=codename)


@override_settings(
    AUTHENTICATION_BACKENDS=["tests.test_auth.StaffOnlyBackend"],
)
def test_a_backend_with_its_own_get_user_is_asked_user_by_user():
    """A custom get_user keeps its say: here it refuses non-staff users."""
    staff, other = make_user(staff=True), make_user()
    staff_key, other_key = session_of(staff), session_of(other)
    results = authenticate_sessions([staff_key, other_key])
    assert isinstance(results[staff_key], Principal)
    assert refusals(results) == {other_key: "user is missing or inactive"}


class StaffOnlyBackend:
    """A backend that only lets staff in, to prove get_user is still called."""

    def authenticate(self, request, **credentials):
        return None

    def get_user(self, user_id):
        from django.contrib.auth import get_user_model

        user = get_user_model()._default_manager.filter(pk=user_id).first()
        return user if user is not None and user.is_staff else None


def test_signed_cookie_sessions_authenticate(settings):
    """A signed-cookie session, whose key is the signed data itself, is not mistaken for a malformed key."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    alice = make_user()
    key = session_of(alice)
    assert not key.islower()  # capitals and ':' no database key has
    principal = authenticate_sessions([key])[key]
    assert isinstance(principal, Principal)
    assert principal.user_id == alice.pk


def test_an_inactive_user_is_refused_even_by_a_backend_that_lets_them_in(settings):
    """AllowAllUsersModelBackend authenticates inactive users; no audience
    includes them, so their sockets are refused (4003 on a re-check) and an
    inactive staff member keeps no staff audience."""
    backend = "django.contrib.auth.backends.AllowAllUsersModelBackend"
    settings.AUTHENTICATION_BACKENDS = [backend]
    staff = make_user(staff=True)
    key = session_of(staff)
    assert isinstance(authenticate_sessions([key])[key], Principal)
    staff.is_active = False
    staff.save()
    assert refusals(authenticate_sessions([key])) == {
        key: "user is missing or inactive"
    }
