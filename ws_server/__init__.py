"""The WebSocket process: authenticates browsers and relays events from Redis."""
