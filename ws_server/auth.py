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

from dataclasses import dataclass, field
from datetime import datetime
from importlib import import_module
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.contrib.sessions.backends.base import SessionBase
from django.utils.crypto import constant_time_compare
from redis.asyncio import Redis

from notifications.broker import ticket_key
from notifications.publishing import session_digest
from notifications.tickets import InvalidTicket, load_ticket

__all__ = ["AuthenticationFailed", "Principal", "authenticate_session", "redeem_ticket"]


class AuthenticationFailed(Exception):
    """Why a credential was refused; for the log, never for the client."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a connection acts for, and what decides which events reach it."""

    user_id: int
    username: str
    is_staff: bool
    group_ids: frozenset[int]
    # The session key is a credential: kept to re-check the session, never shown.
    session_key: str = field(repr=False)
    session_digest: str = field(repr=False)
    # When the session expires (epoch seconds): the connection is re-checked then.
    expires_at: float = float("inf")


def _session_store(session_key: str) -> SessionBase:
    engine = import_module(settings.SESSION_ENGINE)
    store: SessionBase = engine.SessionStore(session_key)
    return store


def authenticate_session(session_key: str) -> Principal:
    """
    Return the principal for ``session_key`` or raise AuthenticationFailed.

    Blocking (session engine and ORM): call it through ``run_orm``.
    """
    session = _session_store(session_key)
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        # Missing, expired and anonymous sessions all look like this.
        raise AuthenticationFailed("no authenticated session") from None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        raise AuthenticationFailed("session names an unknown backend")
    user = load_backend(backend_path).get_user(user_id)
    if user is None:
        raise AuthenticationFailed("user is missing or inactive")
    if not _session_hash_matches(user, session.get(HASH_SESSION_KEY)):
        raise AuthenticationFailed("session auth hash mismatch (password changed)")
    return Principal(
        user_id=user.pk,
        username=user.get_username(),
        is_staff=user.is_staff,
        group_ids=frozenset(user.groups.values_list("pk", flat=True)),
        session_key=session_key,
        session_digest=session_digest(session_key),
        expires_at=_session_expiry(session, session_key).timestamp(),
    )


def _session_expiry(session: SessionBase, session_key: str) -> datetime:
    """
    When the session stops being valid.

    Database-backed engines store the exact time; for the others the session's
    own expiry setting, counted from now, is the best estimate there is.
    """
    model = getattr(session, "model", None)
    if model is not None:
        stored = (
            model.objects.filter(session_key=session_key)
            .values_list("expire_date", flat=True)
            .first()
        )
        if stored is not None:
            return cast(datetime, stored)
    return cast(datetime, session.get_expiry_date())


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


async def redeem_ticket(ticket: str, redis: Redis) -> str:
    """
    Return the session key a ticket was issued from, or raise AuthenticationFailed.

    The nonce is deleted as it is read (GETDEL), so a ticket works once: a
    second connection presenting the same ticket is refused.
    """
    try:
        claims = load_ticket(ticket)
    except InvalidTicket as exc:
        raise AuthenticationFailed(f"ticket refused: {exc}") from None
    session_key = await redis.getdel(ticket_key(claims.nonce))
    if session_key is None:
        raise AuthenticationFailed("ticket already used or expired")
    return session_key.decode() if isinstance(session_key, bytes) else str(session_key)
