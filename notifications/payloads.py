"""Turn model instances into the plain data the wire format carries."""

from typing import Any

from .models import Audience, Event
from .wire import (
    AudienceSpec,
    EventMessage,
    audience_from_data,
    event_message,
    push_message,
    user_key,
)

__all__ = [
    "audience_spec",
    "event_message_of",
    "event_payload",
    "push_payload",
]


def event_payload(event: Event) -> dict[str, Any]:
    """Return the fields a client sees for ``event``."""
    return {
        "id": event.pk,
        "title": event.title,
        "body": event.body,
        "level": event.level,
        "url": event.url,
        "created_at": event.created_at.isoformat(),
        "expires_at": event.expires_at.isoformat() if event.expires_at else None,
    }


def push_payload(event: Event) -> dict[str, Any]:
    """Return the fields a client sees for a durable push."""
    return {
        "id": event.pk,
        "name": event.push_type,
        "data": event.push_data,
        "sent_at": event.created_at.isoformat(),
    }


def event_message_of(event: Event, *, prefetched: bool = False) -> EventMessage:
    """
    The message the stream carried, or would have, for ``event``
    (``prefetched``: see ``audience_spec``).
    """
    if event.push_type:
        return push_message(
            push_payload(event), audience_from_data(event.push_audience)
        )
    return event_message(
        event_payload(event), audience_spec(event, prefetched=prefetched)
    )


def audience_spec(event: Event, *, prefetched: bool = False) -> AudienceSpec:
    """
    Describe ``event``'s audience so a ws_server can match connections.

    ``prefetched``: the event's groups, users and permissions were prefetched
    (``selectors.events_with_audience``), so read them from there; otherwise
    read only their ids, since 100,000 selected users as model instances cost
    a second where their ids cost 70 ms (bench/analysis.md).
    """
    if event.audience == Audience.EVERYONE:
        return AudienceSpec(everyone=True)
    if event.audience == Audience.STAFF:
        return AudienceSpec(staff=True)
    if event.audience == Audience.SUPERUSERS:
        return AudienceSpec(superusers=True)
    if event.audience == Audience.PERMISSIONS:
        return AudienceSpec(
            permissions=frozenset(
                f"{permission.content_type.app_label}.{permission.codename}"
                for permission in event.permissions.all()
            )
        )
    if event.audience == Audience.GROUPS:
        return AudienceSpec(groups=_ids(event.groups, prefetched))
    return AudienceSpec(users=frozenset(map(user_key, _ids(event.users, prefetched))))


def _ids(related: Any, prefetched: bool) -> frozenset[Any]:
    if prefetched:
        return frozenset(item.pk for item in related.all())
    return frozenset(related.values_list("pk", flat=True))
