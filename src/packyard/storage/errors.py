"""Errors of the storage domain.

PackyardError
├── BlobNotFound          500  no committed blob for a digest: the data directory or bucket lost a file
└── StorageUnavailable    503  the object store did not answer or refused a request; retrying later may work
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


class StorageUnavailable(PackyardError):
    """The object store could not be reached or refused a request (an outage, wrong credentials, a deleted
    bucket). Nothing was made visible by the failed call, so the client may retry; the server recovers by itself
    once the store answers again."""

    status_code = 503
    headers = {"Retry-After": "5"}

    def __init__(self, detail: str) -> None:
        super().__init__(f"The blob store is unavailable ({detail}); try again shortly.")
        self.detail = detail
