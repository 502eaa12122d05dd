"""Content-addressed blob storage (sha256)."""

from packyard.storage.errors import BlobNotFound
from packyard.storage.interfaces import BlobStore, StagedBlob
from packyard.storage.local import LocalBlobStore
from packyard.storage.responses import BlobResponse

__all__ = ["BlobNotFound", "BlobResponse", "BlobStore", "LocalBlobStore", "StagedBlob"]
