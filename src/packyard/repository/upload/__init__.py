"""The legacy PyPI upload API, validated in layers: request shape, filename, archive, then state."""
