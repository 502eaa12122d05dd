"""Deploying a bundle: the pipeline, its tasks that rsconnect polls, and how each app mode is launched."""
