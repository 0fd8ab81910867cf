"""
Authenticate WebSocket connections with Django's own session rules.

A connection is accepted exactly when Django would accept a request carrying
the same session: the session exists and hasn't expired, names a configured
backend and an active user, and holds that user's current session auth hash
(so a password change logs sockets out, as it logs out other browsers). The
checks mirror ``django.contrib.auth.get_user``, minus its side effects: the
ws_server never flushes or rotates a session, it only refuses it.

Refusals are quiet towards the client (one generic close reason) and explicit
in the log (which check failed), and never log a credential.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.contrib.sessions.backends import cache, cached_db, db, signed_cookies
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.db import Error as DatabaseError
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from redis.asyncio import Redis
from redis.exceptions import RedisError

from notifications.broker import ticket_key
from notifications.publishing import session_digest
from notifications.tickets import InvalidTicket, load_ticket
from notifications.usermodel import has_field
from notifications.wire import UserKey, user_key

from .db import SessionStoreUnavailable
from .redis_calls import redis_call

__all__ = [
    "AuthenticationFailed",
    "Principal",
    "authenticate_sessions",
    "redeem_ticket",
]

logger = logging.getLogger(__name__)


class AuthenticationFailed(Exception):
    """Why a credential was refused; for the log, never for the client."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a connection acts for, and what decides which events reach it."""

    user_id: UserKey
    username: str
    is_staff: bool
    group_ids: frozenset[int]
    # The session key is a credential: kept to re-check the session, never shown.
    session_key: str = field(repr=False)
    session_digest: str = field(repr=False)
    # When the session expires (epoch seconds): the connection is re-checked then.
    expires_at: float = float("inf")
    is_superuser: bool = False
    # "app_label.codename" of every permission held, directly or through a
    # group (a superuser's are not loaded: it holds them all).
    permissions: frozenset[str] = frozenset()


def authenticate_sessions(
    session_keys: Sequence[str],
) -> dict[str, Principal | AuthenticationFailed]:
    """
    Authenticate many sessions at once: a few queries, however many keys.

    Each key maps to its principal, or to the AuthenticationFailed that says
    why it was refused. Sessions, users and groups are each loaded in one go
    where the session engine and the authentication backend allow it.
    Blocking (session engine and ORM): call it through ``run_orm``.
    """
    sessions = _load_sessions(session_keys)
    results: dict[str, Principal | AuthenticationFailed] = {}
    claims: dict[str, tuple[str, Any]] = {}
    for key in session_keys:
        data, _expiry = sessions.get(key, ({}, None))
        try:
            user_id = get_user_model()._meta.pk.to_python(data[SESSION_KEY])
            backend_path = data[BACKEND_SESSION_KEY]
        except (KeyError, ValidationError):
            # Missing, expired and anonymous sessions all look like this.
            results[key] = AuthenticationFailed("no authenticated session")
            continue
        if backend_path not in settings.AUTHENTICATION_BACKENDS:
            results[key] = AuthenticationFailed("session names an unknown backend")
            continue
        claims[key] = (backend_path, user_id)
    users = _load_users(set(claims.values()))
    group_ids = _load_group_ids({user.pk for user in users.values() if user})
    permissions = _load_permissions(
        {user.pk for user in users.values() if user and not _is_superuser(user)},
        group_ids,
    )
    for key, claim in claims.items():
        user = users[claim]
        data, expiry = sessions[key]
        # Backends such as AllowAllUsersModelBackend let inactive users
        # authenticate; no audience includes them, so no socket serves them.
        if user is None or not getattr(user, "is_active", True):
            results[key] = AuthenticationFailed("user is missing or inactive")
        elif not _session_hash_matches(user, data.get(HASH_SESSION_KEY)):
            results[key] = AuthenticationFailed(
                "session auth hash mismatch (password changed)"
            )
        else:
            results[key] = Principal(
                user_id=user_key(user),
                username=user.get_username(),
                is_staff=bool(getattr(user, "is_staff", False)),
                group_ids=group_ids.get(user.pk, frozenset()),
                session_key=key,
                session_digest=session_digest(key),
                expires_at=expiry.timestamp(),
                is_superuser=_is_superuser(user),
                permissions=permissions.get(user.pk, frozenset()),
            )
    return results


def _is_superuser(user: Any) -> bool:
    return bool(getattr(user, "is_superuser", False))


def _load_sessions(
    session_keys: Sequence[str],
) -> dict[str, tuple[dict[str, Any], datetime]]:
    """
    Each live session's data and the time it expires, by key.

    The database engine's rows hold the exact expiry; other engines give the
    session's own expiry setting counted from now, the best estimate there is.
    Engines other than the plain database and cache ones are asked key by key.
    """
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    keys = [key for key in session_keys if _could_be_session_key(key, store_class)]
    if issubclass(store_class, db.SessionStore) and not issubclass(
        store_class, cached_db.SessionStore
    ):
        rows = (
            store_class.get_model_class()
            .objects.filter(session_key__in=keys, expire_date__gt=timezone.now())
            .values_list("session_key", "session_data", "expire_date")
        )
        decoder = store_class()
        return {key: (decoder.decode(data), expiry) for key, data, expiry in rows}
    if issubclass(store_class, cache.SessionStore):
        prefix = store_class.cache_key_prefix
        try:
            found = caches[settings.SESSION_CACHE_ALIAS].get_many(
                [prefix + key for key in keys]
            )
        except Exception as exc:
            # The cache is out (or hung): an outage, not a refusal. Cache
            # clients raise their own types (redis-py, pymemcache, OSError).
            raise SessionStoreUnavailable(
                f"session cache failed: {type(exc).__name__}"
            ) from exc
        estimator = store_class()
        return {
            cache_key.removeprefix(prefix): (
                data,
                estimator.get_expiry_date(expiry=data.get("_session_expiry")),
            )
            for cache_key, data in found.items()
        }
    sessions = {}
    for key in keys:
        try:
            store = store_class(key)
            data = dict(store.items())
            expiry = store.get_expiry_date()
        except DatabaseError:
            # An outage, not a bad key: fail the batch, as the database and
            # cache engines do, rather than refuse (so revoke) every session.
            raise
        except (OSError, RedisError) as exc:
            raise SessionStoreUnavailable(
                f"session store failed: {type(exc).__name__}"
            ) from exc
        except Exception as exc:
            # Only the exception's type: its message may quote the key.
            logger.warning(
                "session engine raised %s for one key; refusing it",
                type(exc).__name__,
            )
            continue
        if data:
            sessions[key] = (data, expiry)
    return sessions


# Django makes session keys from VALID_KEY_CHARS, 32 of them; its session
# model stores up to 40, and SessionBase._validate_session_key wants 8 or more.
_SESSION_KEY_LENGTHS = range(8, 41)


def _could_be_session_key(key: str, store_class: type) -> bool:
    """
    Tell whether Django could have made ``key``, before any engine sees it.

    One malformed cookie (a space, a control character, 300 characters) must
    not fail a whole batch: memcached refuses such keys, and ``get_many``
    raises for all of them. The refused key is simply not found. Signed
    cookie sessions are the exception: their key is the signed data itself,
    looked up nowhere, and their ``load()`` refuses a bad one.
    """
    if issubclass(store_class, signed_cookies.SessionStore):
        return True
    return len(key) in _SESSION_KEY_LENGTHS and set(key).issubset(VALID_KEY_CHARS)


def _load_users(claims: set[tuple[str, Any]]) -> dict[tuple[str, Any], Any]:
    """
    The active user behind each (backend path, user id) claim, or None.

    ``ModelBackend.get_user`` is one query per user; for backends that keep
    it, the users are fetched together with the same rules (default manager,
    ``user_can_authenticate``). Other backends are asked user by user.
    """
    users: dict[tuple[str, Any], Any] = {}
    user_ids_by_backend: dict[str, list[Any]] = {}
    for backend_path, user_id in claims:
        user_ids_by_backend.setdefault(backend_path, []).append(user_id)
    for backend_path, user_ids in user_ids_by_backend.items():
        backend = load_backend(backend_path)
        if type(backend).get_user is ModelBackend.get_user:
            found = get_user_model()._default_manager.in_bulk(user_ids)
            for user_id in user_ids:
                user = found.get(user_id)
                can = user is not None and backend.user_can_authenticate(user)
                users[backend_path, user_id] = user if can else None
        else:
            for user_id in user_ids:
                users[backend_path, user_id] = backend.get_user(user_id)
    return users


def _load_group_ids(user_ids: set[Any]) -> dict[Any, frozenset[int]]:
    """Each user's group ids, in one query (none for a user model without groups)."""
    if not has_field("groups"):
        return {}
    field = get_user_model()._meta.get_field("groups")
    memberships = field.remote_field.through.objects.filter(
        **{f"{field.m2m_field_name()}__in": user_ids}
    ).values_list(field.m2m_field_name(), field.m2m_reverse_field_name())
    group_ids: dict[Any, set[int]] = {}
    for user_id, group_id in memberships:
        group_ids.setdefault(user_id, set()).add(group_id)
    return {user_id: frozenset(ids) for user_id, ids in group_ids.items()}


def _load_permissions(
    user_ids: set[Any], group_ids: dict[Any, frozenset[int]]
) -> dict[Any, frozenset[str]]:
    """
    Each user's permission names, as ``ModelBackend`` grants them: the
    user's own and their groups', in two queries for the whole batch.

    Names are interned, so a thousand connections holding the same
    permission share one string.
    """
    own: dict[Any, set[str]] = {}
    if has_field("user_permissions"):
        rows = Permission.objects.filter(user__in=user_ids).values_list(
            "user", "content_type__app_label", "codename"
        )
        for user_id, app_label, codename in rows:
            own.setdefault(user_id, set()).add(sys.intern(f"{app_label}.{codename}"))
    wanted_groups = {
        group_id for user_id in user_ids for group_id in group_ids.get(user_id, ())
    }
    by_group: dict[int, set[str]] = {}
    if wanted_groups:
        rows = Permission.objects.filter(group__in=wanted_groups).values_list(
            "group", "content_type__app_label", "codename"
        )
        for group_id, app_label, codename in rows:
            by_group.setdefault(group_id, set()).add(
                sys.intern(f"{app_label}.{codename}")
            )
    permissions = {}
    for user_id in user_ids:
        names = set(own.get(user_id, ()))
        for group_id in group_ids.get(user_id, ()):
            names |= by_group.get(group_id, set())
        if names:
            permissions[user_id] = frozenset(names)
    return permissions


def _session_hash_matches(user: Any, session_hash: str | None) -> bool:
    if not session_hash:
        return False
    if constant_time_compare(session_hash, user.get_session_auth_hash()):
        return True
    # Sessions signed with a SECRET_KEY_FALLBACKS key stay valid, as in Django.
    return any(
        constant_time_compare(session_hash, fallback)
        for fallback in user.get_session_auth_fallback_hash()
    )


async def redeem_ticket(ticket: str, redis: Redis) -> tuple[str, UserKey]:
    """
    Return the session key a ticket was issued from and the user it was issued
    to (the session must still belong to them), or raise AuthenticationFailed.

    The nonce is deleted as it is read (GETDEL), so a ticket works once: a
    second connection presenting the same ticket is refused.
    """
    try:
        claims = load_ticket(ticket)
    except InvalidTicket as exc:
        raise AuthenticationFailed(f"ticket refused: {exc}") from None
    session_key = await redis_call(redis.getdel(ticket_key(claims.nonce)))
    if session_key is None:
        raise AuthenticationFailed("ticket already used or expired")
    if isinstance(session_key, bytes):
        session_key = session_key.decode()
    return str(session_key), claims.user_id
