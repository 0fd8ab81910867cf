"""
Writes: sending events and changing read state.

Each service runs in one transaction and publishes only after it commits.
"""

from collections.abc import Iterable
from datetime import datetime
from functools import partial

from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from . import publishing, selectors
from .models import Audience, Event, Level, Notification

__all__ = ["dismiss", "mark_all_read", "mark_read", "send_event", "validate_audience"]


def validate_audience(audience: str, *, groups: list[Group], users: list) -> None:
    """Raise ``ValidationError`` unless the audience names its recipients."""
    if audience == Audience.GROUPS and not groups:
        raise ValidationError(
            {"groups": "Choose at least one group for this audience."}
        )
    if audience == Audience.USERS and not users:
        raise ValidationError({"users": "Choose at least one user for this audience."})


@transaction.atomic
def send_event(
    *,
    title: str,
    body: str = "",
    level: str = Level.INFO,
    url: str = "",
    audience: str = Audience.EVERYONE,
    groups: Iterable[Group] = (),
    users: Iterable[AbstractBaseUser] = (),
    created_by: AbstractBaseUser | None = None,
    expires_at: datetime | None = None,
) -> Event:
    """
    Create an event, give each recipient an inbox row, publish it on commit.

    ``groups`` is required for the "groups" audience and ``users`` for the
    "users" audience; both are ignored otherwise.
    """
    groups, users = list(groups), list(users)
    validate_audience(audience, groups=groups, users=users)
    event = Event(
        title=title,
        body=body,
        level=level,
        url=url,
        audience=audience,
        created_by=created_by,
        expires_at=expires_at,
    )
    event.full_clean(exclude=["groups", "users", "created_by"])
    event.save()
    if audience == Audience.GROUPS:
        event.groups.set(groups)
    if audience == Audience.USERS:
        event.users.set(users)
    _fan_out(event)
    transaction.on_commit(partial(publishing.publish_event, event))
    return event


def _fan_out(event: Event) -> None:
    """
    Insert one inbox row per recipient with a single INSERT ... SELECT.

    The recipients never travel through Python, so sending to every one of
    100,000 users costs one statement rather than 100,000 objects.
    """
    recipients = selectors.audience_users(event=event).values("pk")
    select_sql, params = recipients.query.sql_with_params()
    table = connection.ops.quote_name(Notification._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (user_id, event_id) "
            f"SELECT recipient.pk, %s FROM ({select_sql}) recipient",
            (event.pk, *params),
        )


def mark_read(*, user_id: int, event_id: int) -> bool:
    """Mark one notification read; return whether it was unread."""
    with transaction.atomic():
        changed = Notification.objects.filter(
            user_id=user_id, event_id=event_id, read_at__isnull=True
        ).update(read_at=timezone.now())
        if changed:
            _publish_read_on_commit(user_id, ids=[event_id])
    return bool(changed)


def mark_all_read(*, user_id: int, up_to: int) -> int:
    """
    Mark read every notification up to event ``up_to``; return how many.

    The bound makes it race-safe: a notification that arrives while the user
    clicks "mark all read" has a higher id and stays unread.
    """
    with transaction.atomic():
        changed = Notification.objects.filter(
            user_id=user_id, event_id__lte=up_to, read_at__isnull=True
        ).update(read_at=timezone.now())
        if changed:
            _publish_read_on_commit(user_id, up_to=up_to)
    return changed


def dismiss(*, user_id: int, event_id: int) -> bool:
    """Archive one notification out of the inbox; return whether it was there."""
    with transaction.atomic():
        changed = Notification.objects.filter(
            user_id=user_id, event_id=event_id, dismissed_at__isnull=True
        ).update(dismissed_at=timezone.now())
        if changed:
            unread = selectors.unread_count(user_id=user_id)
            transaction.on_commit(
                partial(
                    publishing.publish_dismissed, user_id, ids=[event_id], unread=unread
                )
            )
    return bool(changed)


def _publish_read_on_commit(
    user_id: int, *, ids: list[int] | None = None, up_to: int | None = None
) -> None:
    unread = selectors.unread_count(user_id=user_id)
    transaction.on_commit(
        partial(publishing.publish_read, user_id, ids=ids, up_to=up_to, unread=unread)
    )
