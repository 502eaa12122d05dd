"""`POST /upload/pypi/{source}` (and `/upload/r/{source}` for R source packages) as raw ASGI, in front of FastAPI.

twine uploads one file per request and waits for each answer, so what the server spends around the upload
itself (routing, middleware, dependency resolution, a second thread hop) is paid on every file. This
endpoint reads the headers, checks credentials and the source before a byte of the body is stored, streams
the body into the multipart reader, and makes one thread hop for the checks, the transaction and the cache
update. Errors go through the app's one error boundary, like every other response.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.types import Receive, Scope, Send

from packyard import metrics
from packyard.context import AppContext
from packyard.errors import PackyardError
from packyard.http_errors import send_error
from packyard.repository import services
from packyard.repository.cran.service import accept_r_upload
from packyard.repository.errors import ClientDisconnected
from packyard.repository.mirror.shadowing import shadow_warning
from packyard.repository.upload.multipart import FORM_OVERHEAD, file_too_large, read_upload
from packyard.repository.upload.service import UploadResult, accept_upload

PREFIX = "/upload/pypi/"
R_PREFIX = "/upload/r/"  # a multipart form whose `content` is `<package>_<version>.tar.gz` (repository/cran/)
_TEXT = (b"content-type", b"text/plain; charset=utf-8")


def upload_source(scope: Scope) -> str | None:
    """The source named by `POST /upload/pypi/{source}[/]` or `/upload/r/{source}[/]`, or None for any other
    request."""
    if scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if path.startswith(PREFIX):
        source = path[len(PREFIX) :].removesuffix("/")
    elif path.startswith(R_PREFIX):
        source = path[len(R_PREFIX) :].removesuffix("/")
    else:
        return None
    return source if source and "/" not in source else None


class UploadEndpoint:
    def __init__(self, context: AppContext) -> None:
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send, source: str) -> None:
        try:
            message = await self._upload(scope, receive, source)
        except PackyardError as exc:
            metrics.UPLOAD_REJECTS.labels(str(exc.status_code)).inc()
            return await send_error(scope, receive, send, exc)
        except ClientDisconnected:
            return  # nobody to answer; the staged blob is already discarded
        body = message.encode()
        headers = [_TEXT, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _upload(self, scope: Scope, receive: Receive, source: str) -> str:
        c = self.context
        authorization = content_type = length = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"content-length":
                length = value
        loop = asyncio.get_running_loop()
        # Credentials and the source are checked from the headers, before a byte of the body is stored.
        grant = c.auth.cached(authorization)
        if grant is None:
            grant = await loop.run_in_executor(None, c.auth.authenticate, authorization)
        if source not in c.pages.sources:
            await loop.run_in_executor(None, self._source_exists, source)
        grant.require("sources:write", "source", source)
        limit = c.settings.max_file_size
        if length is not None and length.isdigit() and int(length) > limit + FORM_OVERHEAD:
            raise file_too_large(limit)  # before a byte of the body is read
        parts = await read_upload(content_type or "", _body(receive), c.store, limit)

        accept = accept_r_upload if scope["path"].startswith(R_PREFIX) else accept_upload

        def store() -> UploadResult:
            result = accept(c.db, c.store, source, parts, grant.description)
            c.upload_arrived()
            # This process serves the new file at once; roots follow in the background. When the upload's event
            # is the next in the change log, the page cache applies it without reading the log back.
            if result.serial is None or not c.pages.applied(result.serial, "upload", result.project):
                c.sync(render_roots=False)
            return result

        size = parts.content.size if parts.content is not None else 0  # accepting it hands the blob on
        result = await loop.run_in_executor(None, store)
        metrics.UPLOADS.labels("stored" if result.created else "identical").inc()
        if result.created:
            metrics.UPLOAD_BYTES.inc(size)
        info = c.pages.source_info.get(source)
        if result.new_project and info is not None and not info.is_mirror:
            warning = await shadow_warning(c.mirror, c.db, list(c.pages.repos.values()), info, result.project)
            if warning is not None:
                return f"{result.message}\n{warning}\n"
        return result.message + "\n"

    def _source_exists(self, source: str) -> None:
        """Raises NotFound with the known names."""
        with self.context.db.session() as session:
            services.get_source(session, source)


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return
