"""Errors of the storage domain.

PackyardError
└── BlobNotFound     500  no committed blob for a digest: the data directory or bucket lost a file
"""

from __future__ import annotations

from packyard.errors import PackyardError


class BlobNotFound(PackyardError):
    """A digest the store has no committed blob for. The database points only at committed blobs, so on a
    request this means the data directory lost a file: a server fault, not the client's."""

    status_code = 500

    def __init__(self, digest: str) -> None:
        super().__init__(
            f"Blob `{digest}` is not in the blob store; if the database refers to it, the store lost it "
            "(restore `blobs/` from a backup, or upload the file again)."
        )
        self.digest = digest
