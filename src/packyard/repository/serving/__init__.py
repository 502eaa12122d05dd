"""Serving the simple index and its files: the raw-ASGI hot path, file lookups, negotiation, the routes."""
