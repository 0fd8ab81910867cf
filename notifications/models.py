"""
Events and the per-user inbox rows they fan out to.

An :class:`Event` is what an admin or code sends; a :class:`Notification` is
one recipient's copy of it, carrying that user's read/dismissed state. The
database is the source of truth: Redis only carries news of committed events.

A durable push from application code (``notifications.live``) is an
``Event`` too, with its type, payload and audience in the ``push_*`` fields
and no inbox rows: sharing the id sequence is what lets the ws_server's
ledger, reconciliation and resume cover pushes exactly as they cover
notifications.
"""

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .links import validate_link


class Level(models.TextChoices):
    INFO = "info", _("Info")
    SUCCESS = "success", _("Success")
    WARNING = "warning", _("Warning")
    ERROR = "error", _("Error")


class Audience(models.TextChoices):
    EVERYONE = "everyone", _("Everyone")
    STAFF = "staff", _("Staff only")
    SUPERUSERS = "superusers", _("Superusers only")
    GROUPS = "groups", _("Members of groups")
    USERS = "users", _("Selected users")
    PERMISSIONS = "permissions", _("Holders of permissions")


class Event(models.Model):
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("body"), blank=True)
    level = models.CharField(
        _("level"), max_length=10, choices=Level, default=Level.INFO
    )
    # An http(s) URL or a path on this site ("/exports/42/"): see links.py.
    url = models.CharField(
        _("link"), blank=True, max_length=500, validators=[validate_link]
    )
    audience = models.CharField(
        _("audience"), max_length=11, choices=Audience, default=Audience.EVERYONE
    )
    groups = models.ManyToManyField(
        Group, verbose_name=_("groups"), blank=True, related_name="+"
    )
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, verbose_name=_("users"), blank=True, related_name="+"
    )
    # Holding any one of them (directly or through a group), or being a
    # superuser, makes a recipient: Django's ModelBackend rules.
    permissions = models.ManyToManyField(
        Permission, verbose_name=_("permissions"), blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    # A retracted event leaves every inbox, open page and resume; the row
    # stays, as the record of what was sent and who took it back.
    retracted_at = models.DateTimeField(
        _("retracted at"), null=True, blank=True, editable=False
    )
    retracted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("retracted by"),
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Blank for an inbox notification; a declared event type for a push.
    push_type = models.CharField(
        _("push type"), max_length=100, blank=True, editable=False
    )
    push_data = models.JSONField(_("push data"), null=True, blank=True, editable=False)
    # The push's audience in the wire format's form (``wire.audience_data``):
    # the ws_server matches it against connections, so no rows per recipient.
    push_audience = models.JSONField(
        _("push audience"), null=True, blank=True, editable=False
    )

    class Meta:
        ordering = ["-id"]
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [
            # A resume reads the pushes after a client's position: this small
            # partial index, not every notification since.
            models.Index(
                fields=["id"],
                condition=~Q(push_type=""),
                name="live_notifications_event_push",
            ),
        ]

    def __str__(self) -> str:
        return self.title or self.push_type


class Notification(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    event = models.ForeignKey(
        Event, verbose_name=_("event"), on_delete=models.CASCADE, related_name="+"
    )
    # When a client first acknowledged receiving it live (the delivery stats).
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)
    dismissed_at = models.DateTimeField(_("dismissed at"), null=True, blank=True)

    class Meta:
        ordering = ["-event_id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "event"], name="live_notifications_unique_user_event"
            ),
        ]
        indexes = [
            # Unread counts are a range scan of this small partial index.
            models.Index(
                fields=["user", "event"],
                condition=Q(read_at__isnull=True, dismissed_at__isnull=True),
                name="live_notifications_unread",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} for {self.user_id}"
