"""
The ASGI application uvicorn serves: Origin check, session auth, one route.

The Origin allow-list is the ws_server's (``NOTIFICATIONS_WS_ORIGINS``), so
both servers do the same checks before they accept a connection.
"""

import django
from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

django.setup()

from .consumers import NotificationConsumer  # noqa: E402  (needs the app registry)

application = ProtocolTypeRouter(
    {
        "websocket": OriginValidator(
            AuthMiddlewareStack(
                URLRouter([path("ws", NotificationConsumer.as_asgi())])
            ),
            settings.NOTIFICATIONS_WS_ORIGINS,
        ),
    }
)
