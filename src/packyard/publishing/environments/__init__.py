"""Python environments for content: interpreters, install plans, building with uv, the store and its upkeep."""
