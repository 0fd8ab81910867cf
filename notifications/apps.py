from django.apps import AppConfig, apps
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    name = "notifications"
    # Not "notifications": that is django-notifications-hq's label, and a
    # project moving off it keeps hq's migration rows and tables under that
    # label. Ours (tables, migrations, permissions, admin URLs) never meet them.
    label = "live_notifications"
    verbose_name = _("Notifications")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks and connects the receivers.
        from . import checks, deploy_checks, signals  # noqa: F401

        if apps.is_installed("django.contrib.admin"):
            from . import activity

            activity.stream_bulk_created_entries()
