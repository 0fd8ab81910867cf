"""
The consumer: what a Channels user writes for live notifications.

Same protocol as ws_server, so the same load client measures both: the
handshake is authenticated by the session cookie (AuthMiddlewareStack), the
client sends ``hello`` and gets ``welcome`` with its unread count, then every
event arrives as the frame the publisher encoded once.
"""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from notifications import selectors
from notifications.wire import CloseCode, encode_welcome


class NotificationConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=CloseCode.AUTHENTICATION_FAILED)
            return
        await self.channel_layer.group_add(settings.BENCH_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(settings.BENCH_GROUP, self.channel_name)

    async def receive(
        self, text_data: str | None = None, bytes_data: Any = None
    ) -> None:
        if text_data is None or json.loads(text_data).get("type") != "hello":
            return
        user = self.scope["user"]
        unread = await database_sync_to_async(selectors.unread_count)(user_id=user.pk)
        await self.send(
            text_data=encode_welcome(
                user_id=user.pk,
                username=user.get_username(),
                unread=unread,
                cursor=0,  # the Channels baseline doesn't resume
            )
        )

    async def notification(self, message: dict[str, Any]) -> None:
        """Handle ``group_send(..., {"type": "notification", "frame": ...})``."""
        await self.send(text_data=message["frame"])
