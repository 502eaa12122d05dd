"""Content served as files: rendering at deploy time, the active site of each content, and serving its files."""
