"""
The wire format: every JSON payload that crosses Redis or the WebSocket.

Nothing else in the project builds or parses these payloads. Two families:

* Redis messages, from Django to every ws_server process. Each carries
  ``"v": VERSION``; a process drops (and logs) a version it doesn't know, so a
  rolling upgrade never crashes a relay.
* WebSocket frames, between the ws_server and browsers. The client sends
  small commands; the server sends events and state. ``docs/protocol.md``
  documents each one.

A ws_server process encodes an event's frame once, when it delivers it, and
the same bytes go to every recipient it has (see ``ws_server.delivery``),
which is what keeps fan-out cheap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

__all__ = [
    "NOTIFICATION",
    "PUSH",
    "VERSION",
    "Ack",
    "AudienceSpec",
    "Canary",
    "ClientMessage",
    "CloseCode",
    "Dismiss",
    "EventMessage",
    "GroupChanged",
    "Hello",
    "MarkAllRead",
    "MarkRead",
    "ProtocolError",
    "RedisMessage",
    "SessionEnded",
    "UnknownVersion",
    "UserChanged",
    "UserFrame",
    "UserKey",
    "audience_data",
    "audience_from_data",
    "decode_redis",
    "encode_canary",
    "encode_dismissed",
    "encode_error",
    "encode_event",
    "encode_for_user",
    "encode_frame",
    "encode_group_changed",
    "encode_notification",
    "encode_push",
    "encode_read_state",
    "encode_resync",
    "encode_session_ended",
    "encode_user_changed",
    "encode_welcome",
    "event_message",
    "parse_client_message",
    "parse_user_key",
    "push_message",
    "user_key",
]

VERSION = 1

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

#: A user's primary key as it travels outside the ORM (Redis messages,
#: tickets, frames, the ws_server's indexes): an integer pk as it is, any
#: other (UUID, string) as its string form. One form, so that a key read
#: back from JSON matches the one the ws_server indexed.
UserKey = int | str


def user_key(pk: Any) -> UserKey:
    """The key of a user's primary key (or of a user: its ``pk``)."""
    pk = getattr(pk, "pk", pk)
    if isinstance(pk, bool):
        raise ValueError(f"not a user id: {pk!r}")
    return pk if isinstance(pk, int) else str(pk)


def parse_user_key(value: Any) -> UserKey:
    """A user key read from a message: an int or a string, nothing else."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not a user id: {value!r}")
    return value


class CloseCode(IntEnum):
    """Close codes; docs/protocol.md says what a client should do."""

    #: The server can't check credentials right now (database or Redis out).
    TRY_AGAIN_LATER = 1013

    #: No valid credential: missing, forged, expired or already used.
    AUTHENTICATION_FAILED = 4001
    #: No "hello" arrived within the authentication timeout.
    AUTHENTICATION_TIMEOUT = 4002
    #: Logout, password change, deactivation or deletion ended the session.
    SESSION_REVOKED = 4003
    #: The first message was not a valid "hello".
    PROTOCOL_ERROR = 4004
    #: The client sent messages faster than the rate limit allows.
    RATE_LIMITED = 4008
    #: The user already has the maximum number of open connections.
    TOO_MANY_CONNECTIONS = 4009
    #: The client fell too far behind; reconnect with the last id seen.
    TOO_SLOW = 4010


# Redis messages: Django -> ws_server.


@dataclass(frozen=True, slots=True)
class AudienceSpec:
    """
    Who an event is for, in terms a ws_server can match without a query.

    The recipients are the union of every part that is set. ``permissions``
    are ``"app_label.codename"`` names: holding any one of them (directly or
    through a group) qualifies, and so does being a superuser, as with
    Django's ``ModelBackend``. ``staff_only`` narrows that union to the
    users with ``is_staff``: the admin's own rule, which the activity stream
    follows (staff, and allowed to view the model).
    """

    everyone: bool = False
    staff: bool = False
    superusers: bool = False
    groups: frozenset[int] = frozenset()
    users: frozenset[UserKey] = frozenset()
    permissions: frozenset[str] = frozenset()
    staff_only: bool = False


#: Frame types of the events a relay delivers.
NOTIFICATION = "notification"
PUSH = "push"


@dataclass(frozen=True, slots=True)
class EventMessage:
    """
    An event to deliver: its client fields (``event``) and its audience.

    ``kind`` is the frame type: an inbox ``notification`` or a ``push`` from
    application code. ``event_id`` is None for a live-only push, which has
    no row in the database and so no place in the ledger or in a replay.
    """

    event_id: int | None
    audience: AudienceSpec
    event: dict[str, Any]
    kind: str = NOTIFICATION


@dataclass(frozen=True, slots=True)
class UserFrame:
    """A frame for every open tab of one user (read state, unread count)."""

    user_id: UserKey
    frame: str


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A session was logged out or flushed; ``session`` is its key's digest."""

    session: str


@dataclass(frozen=True, slots=True)
class UserChanged:
    """A user's credentials, activity or permissions changed: re-check them."""

    user_id: UserKey


@dataclass(frozen=True, slots=True)
class GroupChanged:
    """A group's permissions changed: re-check the connections of its members."""

    group_id: int


@dataclass(frozen=True, slots=True)
class Canary:
    """A ws_server process's canary: it checks that the stream brings it back."""

    process: str
    sequence: int


RedisMessage = (
    EventMessage | UserFrame | SessionEnded | UserChanged | GroupChanged | Canary
)


class UnknownVersion(ValueError):
    """A Redis message from a newer (or broken) publisher."""


def encode_event(event: dict[str, Any], audience: AudienceSpec) -> str:
    """Encode a committed event for Redis. ``event`` has the client fields."""
    return _dumps(
        {
            "v": VERSION,
            "type": "event",
            "event": event,
            "audience": audience_data(audience),
        }
    )


def encode_push(push: dict[str, Any], audience: AudienceSpec) -> str:
    """
    Encode a push for Redis. ``push`` has the client fields: ``id`` (None
    when live-only), ``name``, ``data`` and ``sent_at``.
    """
    return _dumps(
        {
            "v": VERSION,
            "type": "push",
            "push": push,
            "audience": audience_data(audience),
        }
    )


def audience_data(audience: AudienceSpec) -> dict[str, Any]:
    """
    The JSON form of an audience, on Redis and in a durable push's row.
    ``staff_only`` appears only when set, so every other audience is written
    as before it existed.
    """
    data = {
        "everyone": audience.everyone,
        "staff": audience.staff,
        "superusers": audience.superusers,
        "groups": sorted(audience.groups),
        "users": sorted(audience.users),
        "permissions": sorted(audience.permissions),
    }
    if audience.staff_only:
        data["staff_only"] = True
    return data


def audience_from_data(data: dict[str, Any]) -> AudienceSpec:
    """
    Read an audience back. A message from before superusers, permissions
    and ``staff_only`` existed has no such keys: it names none of them.
    """
    return AudienceSpec(
        everyone=bool(data["everyone"]),
        staff=bool(data["staff"]),
        superusers=bool(data.get("superusers", False)),
        groups=frozenset(map(int, data["groups"])),
        users=frozenset(map(parse_user_key, data["users"])),
        permissions=frozenset(map(str, data.get("permissions", ()))),
        staff_only=bool(data.get("staff_only", False)),
    )


def event_message(event: dict[str, Any], audience: AudienceSpec) -> EventMessage:
    """Build the message a relay handles, from Redis or from the database."""
    return EventMessage(event_id=_event_id(event["id"]), audience=audience, event=event)


def push_message(push: dict[str, Any], audience: AudienceSpec) -> EventMessage:
    """Build the message for a push, from Redis or (if durable) the database."""
    event_id = push["id"]
    return EventMessage(
        event_id=None if event_id is None else _event_id(event_id),
        audience=audience,
        event={
            "id": event_id,
            "name": str(push["name"]),
            "data": push["data"],
            "sent_at": str(push["sent_at"]),
        },
        kind=PUSH,
    )


def _event_id(value: object) -> int:
    """
    Check an event id from Redis (or a row) against the bound client ids have.

    The relay trusts nothing on the stream: an id past ``MAX_ID`` would raise
    the ledger's high mark past every real event and overflow SQLite's
    integers in the sweep's query, so it is malformed like any other.
    """
    # bool is an int subclass; true is not an event id.
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise ValueError(f"event id out of range (0 to {MAX_ID}): {value!r:.40}")
    return value


def encode_for_user(user_id: UserKey, frame: str) -> str:
    """Encode a client frame for Redis, addressed to every tab of ``user_id``."""
    return _dumps({"v": VERSION, "type": "user", "user": user_id, "frame": frame})


def encode_session_ended(session_digest: str) -> str:
    return _dumps({"v": VERSION, "type": "session_ended", "session": session_digest})


def encode_user_changed(user_id: UserKey) -> str:
    return _dumps({"v": VERSION, "type": "user_changed", "user": user_id})


def encode_group_changed(group_id: int) -> str:
    return _dumps({"v": VERSION, "type": "group_changed", "group": group_id})


def encode_canary(process: str, sequence: int) -> str:
    return _dumps(
        {"v": VERSION, "type": "canary", "process": process, "sequence": sequence}
    )


def decode_redis(raw: str | bytes) -> RedisMessage:
    """
    Decode a Redis message.

    Raise :exc:`UnknownVersion` for another version and :exc:`ValueError`
    (or ``KeyError``/``TypeError``) for a malformed payload.
    """
    try:
        data = json.loads(raw)
    except RecursionError:
        # The decoder recurses once per nesting level: too deep is malformed.
        raise ValueError("the message is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("the message is not a JSON object")
    if data.get("v") != VERSION:
        raise UnknownVersion(f"unsupported message version: {data.get('v')!r}")
    kind = data["type"]
    if kind == "event":
        return event_message(data["event"], audience_from_data(data["audience"]))
    if kind == "push":
        return push_message(data["push"], audience_from_data(data["audience"]))
    if kind == "user":
        return UserFrame(user_id=parse_user_key(data["user"]), frame=str(data["frame"]))
    if kind == "session_ended":
        return SessionEnded(session=str(data["session"]))
    if kind == "user_changed":
        return UserChanged(user_id=parse_user_key(data["user"]))
    if kind == "group_changed":
        return GroupChanged(group_id=int(data["group"]))
    if kind == "canary":
        return Canary(process=str(data["process"]), sequence=int(data["sequence"]))
    raise ValueError(f"unknown message type: {kind!r}")


# WebSocket frames: ws_server -> browser.


def encode_notification(event: dict[str, Any], *, cursor: int | None) -> str:
    """
    Encode an event for every recipient on this process.

    ``cursor`` is where a client that has received this frame resumes from
    (see ``ws_server.ledger``); None in a replay, where the client keeps the
    cursor it had until the ``welcome`` that ends the replay.
    """
    return _dumps({"type": NOTIFICATION, **event, "cursor": cursor})


def encode_frame(message: EventMessage, *, cursor: int | None) -> str:
    """
    Encode an event message's frame (a notification or a push).

    A live-only push carries no cursor: it has no place in the ledger, and
    a client resuming never asks for it again.
    """
    if message.event_id is None:
        cursor = None
    return _dumps({"type": message.kind, **message.event, "cursor": cursor})


def encode_welcome(
    *,
    user_id: UserKey,
    username: str,
    unread: int,
    cursor: int,
    read: Sequence[int] = (),
) -> str:
    """``read``: the replayed notifications this user has read already."""
    return _dumps(
        {
            "type": "welcome",
            "protocol": VERSION,
            "user": {"id": user_id, "username": username},
            "unread": unread,
            "cursor": cursor,
            "read": list(read),
        }
    )


def encode_read_state(*, ids: list[int] | None, up_to: int | None, unread: int) -> str:
    return _dumps({"type": "read", "ids": ids, "up_to": up_to, "unread": unread})


def encode_dismissed(*, ids: list[int], unread: int) -> str:
    return _dumps({"type": "dismissed", "ids": ids, "unread": unread})


def encode_resync(reason: str) -> str:
    return _dumps({"type": "resync", "reason": reason})


def encode_error(code: str, message: str) -> str:
    return _dumps({"type": "error", "code": code, "message": message})


# WebSocket frames: browser -> ws_server.


@dataclass(frozen=True, slots=True)
class Hello:
    """First client message: an optional ticket and the last event id seen."""

    ticket: str | None = None
    last_id: int | None = None


@dataclass(frozen=True, slots=True)
class MarkRead:
    event_id: int


@dataclass(frozen=True, slots=True)
class MarkAllRead:
    """Mark read every notification up to ``up_to`` (race-safe)."""

    up_to: int


@dataclass(frozen=True, slots=True)
class Dismiss:
    """Archive one notification out of the inbox."""

    event_id: int


@dataclass(frozen=True, slots=True)
class Ack:
    """The client received these notifications (the delivery statistics)."""

    event_ids: tuple[int, ...]


ClientMessage = Hello | MarkRead | MarkAllRead | Dismiss | Ack


class ProtocolError(ValueError):
    """A client frame the server can't act on; ``code`` goes in the reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


MAX_TICKET_LENGTH = 512
MAX_ID = 2**63 - 1
#: Most ids one "ack" may carry: 200 of the largest ids (19 digits) and
#: the frame's JSON still fit the default 4 KiB message limit.
MAX_ACK_IDS = 200


def parse_client_message(data: str | bytes) -> ClientMessage:
    """
    Parse one client frame, or raise :exc:`ProtocolError`.

    Strict on purpose: unknown fields are ignored, but every known field must
    have the right type, so handlers never see a half-valid message.
    """
    if not isinstance(data, str):
        raise ProtocolError("binary_frame", "send JSON in text frames")
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):
        # RecursionError: the decoder recurses once per nesting level, so a
        # small frame of "[[[[..." exhausts the stack; it is bad JSON, not a bug.
        raise ProtocolError("invalid_json", "the frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", "send a JSON object")
    kind = message.get("type")
    if kind == "hello":
        return Hello(
            ticket=_optional_ticket(message.get("ticket")),
            last_id=_optional_id(message.get("last_id"), "last_id"),
        )
    if kind == "mark_read":
        return MarkRead(event_id=_required_id(message.get("id"), "id"))
    if kind == "mark_all_read":
        return MarkAllRead(up_to=_required_id(message.get("up_to"), "up_to"))
    if kind == "dismiss":
        return Dismiss(event_id=_required_id(message.get("id"), "id"))
    if kind == "ack":
        return Ack(event_ids=_id_list(message.get("ids"), "ids"))
    if not isinstance(kind, str):
        raise ProtocolError("invalid_message", "the message has no string 'type'")
    raise ProtocolError("unknown_type", f"unknown message type: {kind[:40]!r}")


def _optional_ticket(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TICKET_LENGTH:
        raise ProtocolError("invalid_message", "'ticket' must be a short string")
    # Tickets are base64url and ':'; a non-ASCII one is forged, and one with a
    # lone surrogate ("\ud800" is valid JSON) can't even be encoded to check.
    if not value.isascii():
        raise ProtocolError("invalid_message", "'ticket' must be ASCII")
    return value


def _id_list(value: object, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_ACK_IDS:
        raise ProtocolError(
            "invalid_message", f"{name!r} must be a list of 1 to {MAX_ACK_IDS} ids"
        )
    return tuple(_required_id(item, name) for item in value)


def _optional_id(value: object, name: str) -> int | None:
    return None if value is None else _required_id(value, name)


def _required_id(value: object, name: str) -> int:
    # bool is an int subclass; true is not an event id.
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise ProtocolError(
            "invalid_message", f"{name!r} must be a non-negative integer"
        )
    return value
