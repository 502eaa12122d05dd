"""Content-addressed blob storage (sha256)."""

from packyard.storage.errors import BlobNotFound, StorageUnavailable
from packyard.storage.interfaces import BlobStore, StagedBlob
from packyard.storage.local import LocalBlobStore
from packyard.storage.responses import BlobResponse
from packyard.storage.s3 import S3BlobStore

__all__ = [
    "BlobNotFound",
    "BlobResponse",
    "BlobStore",
    "LocalBlobStore",
    "S3BlobStore",
    "StagedBlob",
    "StorageUnavailable",
]
