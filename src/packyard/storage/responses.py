"""A blob as an HTTP response, whichever store holds it.

A local store's blob is Starlette's `FileResponse` (sendfile, `Range`, HEAD) on the file `local_file` gives,
released once the response is sent or abandoned. An object store's is either a redirect to a presigned URL
(`[storage] redirect = true`) or streamed from the store with one ranged GET per request, in a thread, so a
network round trip never blocks the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import ExitStack

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from packyard.storage.interfaces import BlobStore

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
# What a redirect keeps of the file's headers: a presigned URL expires, so the redirect itself is never cached.
_REDIRECT_DROPS = {"etag", "cache-control", "accept-ranges", "content-length"}
_WHOLE = (0, -1)  # a Range header to ignore: answer 200 with the whole blob


class BlobResponse(Response):
    """A committed blob. From a local store it raises `BlobNotFound` when created; from an object store, where
    finding out costs a request, when it is sent (still before the status line, so the error is the answer)."""

    def __init__(
        self,
        store: BlobStore,
        digest: str,
        *,
        media_type: str,
        headers: Mapping[str, str] | None = None,
        filename: str | None = None,
    ) -> None:
        self.store = store
        self.digest = digest
        self.media_type = self.blob_type = media_type
        self.filename = filename
        self.file_headers = dict(headers or {})
        self._local = ExitStack()
        self._file: FileResponse | None = None
        self.background = None
        if store.local:
            path = self._local.enter_context(store.local_file(digest))
            self._file = FileResponse(path, media_type=media_type, headers=headers, filename=filename)
            self.status_code = self._file.status_code
            self.raw_headers = self._file.raw_headers
        else:
            self.status_code = 200
            self.init_headers(self.file_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if self._file is not None:
                await self._file(scope, receive, send)
            else:
                response = await run_in_threadpool(self._remote, scope)
                await response(scope, receive, send)
        finally:
            self._local.close()

    def _remote(self, scope: Scope) -> Response:
        """The answer from an object store; runs in a thread, as every call to the store is a request."""
        url = self.store.redirect_url(self.digest, media_type=self.blob_type, filename=self.filename)
        if url is not None:
            kept = {k: v for k, v in self.file_headers.items() if k.lower() not in _REDIRECT_DROPS}
            return RedirectResponse(url, status_code=307, headers={**kept, "cache-control": "no-store"})
        size = self.store.size(self.digest)
        request = Headers(scope=scope)
        headers = {**self.file_headers, "content-type": self.blob_type, "accept-ranges": "bytes"}
        if self.filename is not None:
            headers["content-disposition"] = f'attachment; filename="{self.filename}"'
        start, end, status = 0, size, 200
        wanted = request.get("range")
        if_range = request.get("if-range")
        if wanted is not None and (if_range is None or if_range == headers.get("etag")):
            span = _single_range(wanted, size)
            if span is None:
                return PlainTextResponse(status_code=416, headers={"content-range": f"bytes */{size}"})
            if span is not _WHOLE:
                start, end = span
                status = 206
                headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
        headers["content-length"] = str(end - start)
        if scope["method"] == "HEAD":
            return Response(b"", status_code=status, headers=headers)
        chunks = self.store.stream(self.digest, start, end)
        return StreamingResponse(iterate_in_threadpool(chunks), status_code=status, headers=headers)


def _single_range(value: str, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` as `(start, end)` with `end` exclusive; None when not satisfiable.
    Several ranges, or a header this does not read, get the whole blob (RFC 9110 lets a server ignore Range)."""
    match = _RANGE.fullmatch(value.replace(" ", ""))
    if match is None or (not match[1] and not match[2]):
        return _WHOLE
    if not match[1]:  # the last n bytes
        suffix = int(match[2])
        return (max(size - suffix, 0), size) if suffix > 0 and size > 0 else None
    start = int(match[1])
    end = min(int(match[2]) + 1, size) if match[2] else size
    if start >= size or end <= start:
        return None
    return (start, end)
