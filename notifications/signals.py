"""
Thin receivers: turn auth changes into control messages for open sockets.

Logout, session deletion, password changes, deactivation, deletion and group
changes must reach every ws_server process, so they travel on the same Redis
stream as events, after the change commits. Deleting a database session covers
logout, ``flush()``, key rotation and ``clearsessions`` alike.
"""

from functools import partial

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from . import publishing

User = get_user_model()


@receiver(user_logged_out, dispatch_uid="notifications.session_ended")
def end_session(sender, request, user, **kwargs) -> None:
    # Database-backed sessions announce their row's deletion (session_deleted
    # below) when logout flushes them; others are announced here. Sent before
    # Django flushes the session, so the key is still there.
    if isinstance(request.session, DatabaseSessionStore):
        return
    session_key = request.session.session_key
    if session_key:
        transaction.on_commit(partial(publishing.publish_session_ended, session_key))


@receiver(post_delete, sender=Session, dispatch_uid="notifications.session_deleted")
def session_deleted(sender, instance, **kwargs) -> None:
    # Database sessions: a flush, an admin deleting the row, clearsessions.
    transaction.on_commit(
        partial(publishing.publish_session_ended, instance.session_key)
    )


@receiver(post_save, sender=User, dispatch_uid="notifications.user_saved")
def user_saved(sender, instance, created, update_fields, **kwargs) -> None:
    # Logging in updates last_login only; that changes nothing a socket uses.
    if created or (update_fields and set(update_fields) <= {"last_login"}):
        return
    transaction.on_commit(partial(publishing.publish_user_changed, instance.pk))


@receiver(post_delete, sender=User, dispatch_uid="notifications.user_deleted")
def user_deleted(sender, instance, **kwargs) -> None:
    transaction.on_commit(partial(publishing.publish_user_changed, instance.pk))


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="notifications.groups")
def groups_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if action not in {"post_add", "post_remove", "post_clear"}:
        return
    # From the group's side (group.user_set.add(...)), pk_set holds users.
    user_ids = (pk_set or ()) if reverse else [instance.pk]
    for user_id in user_ids:
        transaction.on_commit(partial(publishing.publish_user_changed, user_id))
