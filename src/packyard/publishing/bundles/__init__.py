"""Bundles: unpacking an uploaded tar.gz safely and reading its manifest."""
