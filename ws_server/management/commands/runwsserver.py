"""``python manage.py runwsserver``: start the WebSocket server."""

import asyncio

from django.core.management.base import BaseCommand, CommandParser

from ws_server.server import run_server


class Command(BaseCommand):
    help = "Run the WebSocket server that relays live notifications."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to bind.")
        parser.add_argument(
            "--port", type=int, default=8001, help="Port to bind; 0 picks a free one."
        )

    def handle(self, *args: object, host: str, port: int, **options: object) -> None:
        asyncio.run(run_server(host, port))
