"""Running apps: one process, the pool per content, the supervisor, their limits, and the harness they run."""
