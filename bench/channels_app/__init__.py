"""
The Django Channels comparison: the same fan-out as ws_server, built the way
a Channels user would build it (AuthMiddlewareStack, a group, channels_redis).
"""
