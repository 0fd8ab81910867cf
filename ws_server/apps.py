from django.apps import AppConfig


class WsServerConfig(AppConfig):
    name = "ws_server"
    verbose_name = "WebSocket server"
