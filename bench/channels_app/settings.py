"""
Settings for the Channels server and for the benchmark's Django side.

The project's settings plus what Channels needs. The benchmark's publisher
uses them too: it publishes to both the project's stream (through
``send_event``) and the Channels group, and everything else (database,
sessions, secret key) must be the same as the ws_server's.
"""

from project.settings import *  # noqa: F403
from project.settings import REDIS_URL, env

ASGI_APPLICATION = "bench.channels_app.asgi.application"

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 defaults to a 5 s read timeout, which kills the
            # layer's idle blocking reads; None restores "wait forever".
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            # Its own key prefix, as the ws_server has its own stream key.
            "prefix": env.str("BENCH_CHANNELS_PREFIX", default="asgi"),
        },
    },
}

#: The group every benchmark connection joins (the "everyone" audience).
BENCH_GROUP = "bench-everyone"
