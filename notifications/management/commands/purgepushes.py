"""Delete durable pushes older than their retention, like ``clearsessions``."""

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from notifications import services
from notifications.conf import settings


class Command(BaseCommand):
    help = (
        "Delete durable pushes older than NOTIFICATIONS_PUSH_RETENTION seconds "
        "(run it from cron, as you run clearsessions)."
    )

    def handle(self, *args: object, **options: object) -> None:
        cutoff = timezone.now() - timedelta(seconds=settings.PUSH_RETENTION)
        deleted = services.purge_pushes(sent_before=cutoff)
        self.stdout.write(f"Deleted {deleted} durable push(es) sent before {cutoff}.")
