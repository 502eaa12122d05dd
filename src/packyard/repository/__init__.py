"""The package repository: sources, repositories, uploads, the mirror, and the simple index they serve."""
