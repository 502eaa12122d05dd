"""Python environments for content: interpreters, install plans, building with uv, the folder and its upkeep."""
