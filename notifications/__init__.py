"""Live notifications for Django: events, per-user inboxes, publishing to Redis."""
