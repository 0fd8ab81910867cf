"""
Services the quick-start scripts share: a Redis for their children, port probes.

demo.py and test.py both need Redis but must not require one to be installed:
they use the one at REDIS_URL when it answers, else a private one that lives
exactly as long as the script.

Stdlib only, like everything the scripts import before the venv exists.
"""

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from scripts.redis_server import RedisServer, is_reachable

__all__ = ["DEFAULT_REDIS_URL", "accepts_connections", "use_redis"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@contextmanager
def use_redis() -> Iterator[str]:
    """Yield a usable Redis URL and export it as REDIS_URL for child processes.

    A private server is stopped when the ``with`` block exits, however it
    exits, so run the children inside the block.
    """
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    if is_reachable(url):
        print(f"Using Redis at {_redact(url)}.", flush=True)
        os.environ["REDIS_URL"] = url
        yield url
        return
    print(
        f"No Redis answers at {_redact(url)}; starting a private redis-server ...",
        flush=True,
    )
    with RedisServer() as server:
        print(f"Using the private Redis at {server.url}.", flush=True)
        os.environ["REDIS_URL"] = server.url
        yield server.url


def accepts_connections(host: str, port: int, timeout: float = 1.0) -> bool:
    """Tell whether something accepts TCP connections at ``host``:``port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _redact(url: str) -> str:
    """Hide the password in a URL that is about to be printed."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
