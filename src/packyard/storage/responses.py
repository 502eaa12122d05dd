"""A blob as an HTTP response: Starlette's `FileResponse` (sendfile, `Range`, HEAD) on the file `local_file` gives,
released once the response is sent or abandoned."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack

from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

from packyard.storage.interfaces import BlobStore


class BlobResponse(FileResponse):
    """`FileResponse` for a committed blob; raises `BlobNotFound` when it is created, not when it is sent."""

    def __init__(
        self,
        store: BlobStore,
        digest: str,
        *,
        media_type: str,
        headers: Mapping[str, str] | None = None,
        filename: str | None = None,
    ) -> None:
        self._local = ExitStack()
        path = self._local.enter_context(store.local_file(digest))
        super().__init__(path, media_type=media_type, headers=headers, filename=filename)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._local.close()
