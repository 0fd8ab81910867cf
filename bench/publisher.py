"""
The Django side of the benchmark: events sent through the real path.

Every event is created by ``notifications.services.send_event`` (event row,
one inbox row per active user, ``on_commit`` publish to the Redis stream),
exactly as the admin or a view would. For the Channels comparison the same
call is followed by what a Channels user adds: an ``on_commit`` hook that
``group_send``s the frame through channels_redis. An event can instead be a
live-only push to everyone, made by ``notifications.live.push`` as a view
would (no rows, one ``on_commit`` publish); its data carries the same title
and pads the frame to the same size, so the load clients count both alike.
The Channels comparison sends notifications only.

When was an event published? Its title embeds ``time.time()`` at the
``send_event`` call, so any client can see it; that moment includes the
database fan-out (N inbox rows). Latencies are measured from a later and
fairer moment, the commit: a callback registered on the same transaction just
before ``send_event`` runs after the commit and right before the event's
publish callbacks (``on_commit`` runs callbacks in registration order), and
records ``time.time()``. Both are kept; the report uses the commit stamp.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bench import pushtypes
from notifications import live, services
from notifications.models import Event
from notifications.payloads import event_payload
from notifications.wire import (
    NOTIFICATION,
    PUSH,
    AudienceSpec,
    encode_frame,
    encode_notification,
    push_message,
)

__all__ = ["Publisher", "Stamp", "body_for_frame_size", "push_body_for_frame_size"]

#: The issue's events are 200 bytes on the wire.
FRAME_SIZE = 200


@dataclass(slots=True)
class Stamp:
    """When event ``seq`` was sent (``called``) and published (``committed``)."""

    seq: int
    called: float
    committed: float = 0.0


def body_for_frame_size(size: int = FRAME_SIZE) -> str:
    """Pad the body so that a notification frame is about ``size`` bytes."""
    sample = Event(id=123_456, title=_title(9_999, time.time()), body="")
    sample.created_at = Event._meta.get_field("created_at").pre_save(sample, add=True)
    return _padding(encode_notification(event_payload(sample), cursor=sample.pk), size)


def push_body_for_frame_size(size: int = FRAME_SIZE) -> str:
    """Pad the data's body so that a live-only push frame is about ``size`` bytes."""
    sample = push_message(
        {
            "id": None,
            "name": pushtypes.LIVE,
            "data": {"title": _title(9_999, time.time()), "body": ""},
            "sent_at": timezone.now().isoformat(),
        },
        AudienceSpec(everyone=True),
    )
    return _padding(encode_frame(sample, cursor=None), size)


def _padding(frame: str, size: int) -> str:
    return "x" * max(0, size - len(frame.encode()))


def _title(seq: int, called: float) -> str:
    """What the load clients read a frame's seq from (``bench.wsclient.MARKER``)."""
    return f"bench:{seq}:{called:.6f}"


class Publisher:
    """Send benchmark events; ``channels`` adds the Channels group_send."""

    def __init__(self, *, channels: bool) -> None:
        self.channels = channels
        self.body = body_for_frame_size()
        self.push_body = push_body_for_frame_size()

    def send_one(self, seq: int, *, kind: str = NOTIFICATION) -> Stamp:
        """Send one event in its own transaction, as one request would."""
        with transaction.atomic():
            stamp = self._send(seq, kind)
        return stamp

    def send_burst(
        self,
        seqs: range,
        *,
        kind: str = NOTIFICATION,
        on_commit: Callable[[], object] = lambda: None,
    ) -> list[Stamp]:
        """
        Send events in one transaction, so that they are all published at once.

        The database work (N inbox rows per notification) happens before the
        first publish, so the burst measures the server's fan-out, not the
        database. ``on_commit`` runs at the commit, before the first publish.
        """
        with transaction.atomic():
            transaction.on_commit(on_commit)
            stamps = [self._send(seq, kind) for seq in seqs]
        return stamps

    def _send(self, seq: int, kind: str) -> Stamp:
        stamp = Stamp(seq=seq, called=time.time())
        transaction.on_commit(partial(_record_commit, stamp))
        title = _title(seq, stamp.called)
        if kind == PUSH:
            data = {"title": title, "body": self.push_body}
            live.push(pushtypes.LIVE, data, to=live.everyone())
        else:
            event = services.send_event(title=title, body=self.body)
            if self.channels:
                transaction.on_commit(partial(_group_send, event))
        return stamp


def _record_commit(stamp: Stamp) -> None:
    stamp.committed = time.time()


def _group_send(event: Event) -> None:
    """What a Channels project does after commit: one group_send per event."""
    frame = encode_notification(event_payload(event), cursor=event.pk)
    async_to_sync(get_channel_layer().group_send)(
        settings.BENCH_GROUP, {"type": "notification", "frame": frame}
    )
