"""
The benchmark's database and sessions: users who log in as browsers do.

Every connection presents a real Django session cookie: a session created by
the configured session engine, holding the user id, backend and session auth
hash exactly as ``django.contrib.auth.login`` stores them. Users get an
unusable password (hashing 10,000 real passwords would take minutes and
changes nothing the servers do).

Only "bench-" users exist in the benchmark's database, and only the first N
of them are active, so the "everyone" audience is exactly the N connected
users and each event inserts N inbox rows.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
)
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.cache import SessionStore as CacheStore
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection, transaction

from notifications.models import Event, Notification

__all__ = [
    "activate_users",
    "clear_events",
    "create_sessions",
    "create_users",
    "prepare_database",
]

USERNAME_PREFIX = "bench-"


def prepare_database() -> None:
    """Migrate, and refuse a database that holds anyone but benchmark users."""
    call_command("migrate", interactive=False, verbosity=0)
    users = get_user_model()._default_manager
    if users.exclude(username__startswith=USERNAME_PREFIX).exists():
        raise SystemExit(
            "The benchmark database has users of its own: every benchmark event "
            "would reach them. Give --database-url an empty, dedicated database."
        )


def create_users(count: int) -> list[int]:
    """Create ``count`` benchmark users (reusing existing ones); return their pks."""
    model = get_user_model()
    existing = model._default_manager.filter(
        username__startswith=USERNAME_PREFIX
    ).count()
    password = make_password(None)
    model._default_manager.bulk_create(
        [
            model(username=f"{USERNAME_PREFIX}{i:06d}", password=password)
            for i in range(existing, count)
        ],
        batch_size=2_000,
    )
    return list(
        model._default_manager.filter(username__startswith=USERNAME_PREFIX)
        .order_by("username")
        .values_list("pk", flat=True)[:count]
    )


def create_sessions(user_pks: list[int]) -> list[str]:
    """
    Log each user in once, as ``login()`` would; return the session keys.

    Each session is stored by both the database and the cache engines under
    the same key, so every server can be measured with either engine
    (``SESSION_ENGINE`` is per process).
    """
    backend = settings.AUTHENTICATION_BACKENDS[0]
    users = get_user_model()._default_manager.in_bulk(user_pks)
    keys = []
    cached: dict[str, dict[str, str]] = {}
    with transaction.atomic():
        for pk in user_pks:
            user = users[pk]
            data = {
                SESSION_KEY: user._meta.pk.value_to_string(user),
                BACKEND_SESSION_KEY: backend,
                HASH_SESSION_KEY: user.get_session_auth_hash(),
            }
            session = DatabaseStore()
            session.update(data)
            session.save(must_create=True)
            # What the cache engine's save() writes. Not CacheStore(key).save():
            # a store loading a key it doesn't hold forgets the key and saves
            # the data under a new random one.
            cached[CacheStore.cache_key_prefix + session.session_key] = data
            keys.append(session.session_key)
    caches[settings.SESSION_CACHE_ALIAS].set_many(cached, settings.SESSION_COOKIE_AGE)
    return keys


def activate_users(user_pks: list[int], count: int) -> None:
    """Make the first ``count`` benchmark users the only active ones."""
    users = get_user_model()._default_manager.filter(
        username__startswith=USERNAME_PREFIX
    )
    users.update(is_active=False)
    # A range, not pk__in: 10,000 parameters overflow some SQLite builds.
    users.filter(pk__gte=user_pks[0], pk__lte=user_pks[count - 1]).update(
        is_active=True
    )


def clear_events() -> None:
    """
    Delete every event and inbox row, so each run starts with empty inboxes.

    Plain DELETEs: the ORM's cascade collector would load 100,000s of rows.
    """
    tables = [
        Notification._meta.db_table,
        Event.groups.through._meta.db_table,
        Event.users.through._meta.db_table,
        Event.permissions.through._meta.db_table,
        Event._meta.db_table,
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")
