"""
WebSocket tickets for cross-site deployments.

A page on another site can't make the browser send Django's session cookie to
the WebSocket server, so it asks Django for a ticket over HTTP and sends it as
the first WebSocket message (never in the URL, where it would be logged).

A ticket is signed with Django's signing framework under its own salt and
expires after ``NOTIFICATIONS_TICKET_MAX_AGE`` seconds. It names a random nonce
that Redis maps to the session it was issued from, for as long as the ticket
lives. The ws_server redeems the nonce atomically (single use) and loads that
session, so logging out invalidates every unused ticket.
"""

import secrets
from dataclasses import dataclass

from django.core import signing
from django.http import HttpRequest

from .broker import get_redis, ticket_key
from .conf import settings
from .wire import UserKey, parse_user_key, user_key

__all__ = ["InvalidTicket", "NoSession", "TicketClaims", "issue_ticket", "load_ticket"]

SALT = "notifications.tickets"


@dataclass(frozen=True, slots=True)
class TicketClaims:
    user_id: UserKey
    nonce: str


class InvalidTicket(Exception):
    """The ticket is forged, tampered with, malformed or expired."""


class NoSession(ValueError):
    """The request has no saved session to bind a ticket to."""


def issue_ticket(request: HttpRequest) -> str:
    """
    Issue a ticket for the logged-in user of ``request``'s session.

    Raise :exc:`NoSession` if the request has no saved session (its user was
    authenticated some other way: a token, say). Raise ``redis.RedisError`` if
    Redis fails: after one short timeout (see ``broker.get_redis``), or at
    once (``CircuitOpen``) while it is known to be failing.
    """
    session = getattr(request, "session", None)
    session_key = session.session_key if session is not None else None
    if session_key is None:
        raise NoSession("issue_ticket() needs a saved session")
    nonce = secrets.token_urlsafe(18)
    get_redis().set(ticket_key(nonce), session_key, ex=settings.TICKET_MAX_AGE)
    return signing.dumps({"u": user_key(request.user), "n": nonce}, salt=SALT)


def load_ticket(ticket: str) -> TicketClaims:
    """Check the ticket's signature and age; return what it claims."""
    try:
        data = signing.loads(ticket, salt=SALT, max_age=settings.TICKET_MAX_AGE)
    except signing.SignatureExpired:
        raise InvalidTicket("expired") from None
    except signing.BadSignature:
        raise InvalidTicket("bad signature") from None
    try:
        return TicketClaims(user_id=parse_user_key(data["u"]), nonce=str(data["n"]))
    except (KeyError, TypeError, ValueError):
        raise InvalidTicket("malformed") from None
