"""Content-addressed blob storage (sha256)."""

from packyard.storage.interfaces import BlobStore, StagedBlob
from packyard.storage.local import LocalBlobStore

__all__ = ["BlobStore", "LocalBlobStore", "StagedBlob"]
