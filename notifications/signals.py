"""
Thin receivers: turn auth changes into control messages for open sockets.

Logout, password changes, deactivation, deletion, group and permission
changes (a user's own, or a group's) must reach
every ws_server process, so they travel on the same Redis stream as events,
after the change commits. Logging out announces the session's end whatever
the session engine, database sessions included.

Nothing listens to ``Session`` rows: a delete receiver there turns off
Django's fast delete, so ``clearsessions`` would load every expired row and
publish once per row. A session row deleted some other way (the admin,
``QuerySet.delete()``) is caught by the ws_server's periodic re-check, and an
expired one by its expiry check. So are changes no signal announces
(``QuerySet.update()``, raw SQL, a deleted group).
"""

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models import Model, QuerySet
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from django.dispatch import receiver

from . import publishing, services
from .models import Event
from .usermodel import has_field

User = get_user_model()

#: The user fields an open socket depends on: who it is (the session hash is
#: derived from the password) and whether it may stay open.
SOCKET_FIELDS = frozenset(
    {"password", "is_active", "is_staff", "is_superuser", User.USERNAME_FIELD}
)
#: Where ``pre_clear`` leaves the holders of a relation for ``post_clear``.
CLEARED_MEMBERS = "_notifications_cleared_members"


@receiver(user_logged_out, dispatch_uid="notifications.session_ended")
def end_session(sender, request, user, **kwargs) -> None:
    # Sent before logout() flushes the session, so the key is still there.
    session_key = request.session.session_key
    if session_key:
        _on_commit(publishing.publish_session_ended, session_key)


@receiver(post_save, sender=User, dispatch_uid="notifications.user_saved")
def user_saved(sender, instance, created, update_fields, **kwargs) -> None:
    # A save of named fields (last_login at login, a profile edit) that
    # changes nothing a socket uses is not announced; a full save may have.
    if created or (update_fields is not None and not SOCKET_FIELDS & update_fields):
        return
    _on_commit(publishing.publish_user_changed, instance.pk)


@receiver(pre_delete, sender=Event, dispatch_uid="notifications.event_deleted")
def event_deleted(sender, instance, **kwargs) -> None:
    # Before the delete: the audience's rows go with the event. A push's own
    # row (purgepushes) was never on a page.
    if not instance.push_type and instance.retracted_at is None:
        services.announce_retraction(instance)


@receiver(post_delete, sender=User, dispatch_uid="notifications.user_deleted")
def user_deleted(sender, instance, **kwargs) -> None:
    _on_commit(publishing.publish_user_changed, instance.pk)


def _watch_relation(
    through: type[Model],
    *,
    holders: Callable[[Model], QuerySet],
    announce: Callable[[Iterable[Any]], None],
    uid: str,
) -> None:
    """Announce changes of a many-to-many relation that grants rights."""

    def changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
        _relation_changed(
            sender,
            instance,
            action,
            reverse,
            pk_set,
            holders=holders,
            announce=announce,
        )

    m2m_changed.connect(changed, sender=through, weak=False, dispatch_uid=uid)


def _relation_changed(
    sender: type[Model],
    instance: Model,
    action: str,
    reverse: bool,
    pk_set: set[Any] | None,
    *,
    holders: Callable[[Model], QuerySet],
    announce: Callable[[Iterable[Any]], None],
) -> None:
    """
    Announce the side of a many-to-many relation whose rights changed.

    Forward (``user.groups.add()``) the instance changed; reverse
    (``group.user_set.add()``) the objects in ``pk_set`` did. A reverse
    ``clear()`` sends no ``pk_set``: ``pre_clear`` keeps the holders for
    ``post_clear``.
    """
    cleared = f"{CLEARED_MEMBERS}_{sender._meta.db_table}"
    if not reverse:
        if action == "post_clear" or (action in {"post_add", "post_remove"} and pk_set):
            announce([instance.pk])
    elif action == "pre_clear":
        setattr(instance, cleared, list(holders(instance).values_list("pk", flat=True)))
    elif action == "post_clear":
        announce(instance.__dict__.pop(cleared, ()))
    elif action in {"post_add", "post_remove"} and pk_set:
        announce(pk_set)


def _users_changed(user_ids: Iterable[int]) -> None:
    for user_id in user_ids:
        _on_commit(publishing.publish_user_changed, user_id)


def _groups_changed(group_ids: Iterable[int]) -> None:
    for group_id in group_ids:
        _on_commit(publishing.publish_group_changed, group_id)


# user.groups / group.user_set: the users changed (if users have groups).
if has_field("groups"):
    _watch_relation(
        User.groups.through,
        holders=lambda group: User._default_manager.filter(groups=group),
        announce=_users_changed,
        uid="notifications.groups",
    )
# user.user_permissions / permission.user_set: the users changed.
if has_field("user_permissions"):
    _watch_relation(
        User.user_permissions.through,
        holders=lambda permission: User._default_manager.filter(
            user_permissions=permission
        ),
        announce=_users_changed,
        uid="notifications.user_permissions",
    )
# group.permissions / permission.group_set: the groups changed. Each ws_server
# finds their members among its connections: one message per group, however
# many members it has.
_watch_relation(
    Group.permissions.through,
    holders=lambda permission: Group.objects.filter(permissions=permission),
    announce=_groups_changed,
    uid="notifications.group_permissions",
)


def _on_commit(publish: Callable[..., None], *args: Any) -> None:
    transaction.on_commit(partial(publish, *args), robust=True)
