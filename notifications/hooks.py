"""
Signals other apps can hook: a notification sent, delivered, read, dismissed.

Each is sent after the change commits, in the process that made it: ``sent``,
``read`` and ``dismissed`` in Django (or wherever ``notify()`` and the
services run), ``delivered`` in ``runwsserver``, from one of its ORM threads,
once per batch of acknowledgements (about a second). Receivers must be quick
and must not raise into the caller: Django's ``send_robust`` is used, so an
exception is logged, not propagated.

::

    from django.dispatch import receiver
    from notifications.hooks import notification_read

    @receiver(notification_read)
    def count_reads(sender, user_id, unread, **kwargs): ...
"""

import logging
from typing import Any

from django.dispatch import Signal

__all__ = [
    "notification_delivered",
    "notification_dismissed",
    "notification_read",
    "notification_sent",
]

logger = logging.getLogger(__name__)

#: ``event``: the Event, its inbox rows written. Sender: the Event class.
notification_sent = Signal()
#: ``acknowledged``: event id -> ids of the users whose inbox row for it an
#: acknowledgement just marked delivered (ids not the user's, and rows
#: delivered before, are left out). Only when something changed. Sender:
#: Notification.
notification_delivered = Signal()
#: ``user_id``; ``ids`` (the event ids marked read) or ``up_to`` (every one
#: up to it: "mark all read"); ``unread``, the count after. Only when
#: something changed. Sender: Notification.
notification_read = Signal()
#: ``user_id``, ``ids``, ``unread``, as for read. Sender: Notification.
notification_dismissed = Signal()


def send(signal: Signal, sender: type, **arguments: Any) -> None:
    """Send ``signal``; log a receiver's exception instead of raising it."""
    for receiver, result in signal.send_robust(sender, **arguments):
        if isinstance(result, Exception):
            logger.error(
                "%s receiver %r failed", _name(signal), receiver, exc_info=result
            )


def _name(signal: Signal) -> str:
    return next(name for name in __all__ if globals()[name] is signal)
