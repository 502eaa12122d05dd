"""The simple index: pages rendered at write time, the cache that serves them, and dated snapshots."""
