"""Turn model instances into the plain data the wire format carries."""

from typing import Any

from .models import Audience, Event
from .wire import (
    AudienceSpec,
    EventMessage,
    audience_from_data,
    event_message,
    push_message,
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


def event_message_of(event: Event) -> EventMessage:
    """The message the stream carried, or would have, for ``event``."""
    if event.push_type:
        return push_message(
            push_payload(event), audience_from_data(event.push_audience)
        )
    return event_message(event_payload(event), audience_spec(event))


def audience_spec(event: Event) -> AudienceSpec:
    """Describe ``event``'s audience so a ws_server can match connections."""
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
    # .all() rather than values_list() so prefetched relations are reused.
    if event.audience == Audience.GROUPS:
        return AudienceSpec(groups=frozenset(group.pk for group in event.groups.all()))
    return AudienceSpec(users=frozenset(user.pk for user in event.users.all()))
