"""Serving a content's files (static HTML, rendered notebooks and Quarto output) as raw ASGI, with no process.

The proxy hands over the path below `/content/<guid>/` as the client sent it (still percent-encoded). It is
decoded once here, `..` segments are refused before any lookup, and the resolved file must lie inside the
site's folder, so neither encoded dots nor symlinks reach anything else. Responses carry an ETag and
Last-Modified, answer conditional requests with 304, and honour a single byte range.
"""

from __future__ import annotations

import asyncio
import html
import mimetypes
import os
import stat
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

from starlette.types import Receive, Scope, Send

CHUNK = 256 * 1024
# Python's built-in table (never the host's /etc/mime.types, so answers are the same everywhere), corrected
# and completed for what web pages load.
_TYPES = mimetypes.MimeTypes()
_OVERRIDES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".wasm": "application/wasm",
    ".md": "text/markdown",
    ".qmd": "text/markdown",
    ".ipynb": "application/x-ipynb+json",
    ".csv": "text/csv",
    ".yml": "text/yaml",
    ".yaml": "text/yaml",
}
_TEXT = ("text/", "application/json", "application/javascript", "application/xml", "image/svg+xml")


@dataclass(frozen=True)
class Site:
    """One bundle's files as a content serves them."""

    guid: str
    bundle_id: int
    root: Path  # the folder served at /content/<guid>/
    index: str | None = None  # the document served at the root when it is not `index.html`


def content_type(name: str) -> str:
    suffix = os.path.splitext(name)[1].lower()
    kind = _OVERRIDES.get(suffix) or _TYPES.guess_type(name, strict=False)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith(_TEXT) else kind


async def serve(scope: Scope, receive: Receive, send: Send, site: Site, raw_path: bytes) -> None:
    """Answer one GET or HEAD for a file of `site`; `raw_path` is from "/" below the content's prefix."""
    method = scope["method"]
    path, _, query = raw_path.partition(b"?")
    if method not in ("GET", "HEAD"):
        text = f"Method {method} is not allowed here: content served as files answers GET and HEAD only."
        return await _send_text(scope, send, 405, text, [(b"allow", b"GET, HEAD")])
    try:
        decoded = unquote_to_bytes(path).decode()
    except UnicodeDecodeError:
        return await _not_found(scope, send, site, path.decode("latin-1"))
    segments = [s for s in decoded.split("/") if s not in ("", ".")]
    if ".." in segments or "\x00" in decoded:
        text = f"The path `{decoded}` has a `..` segment or a NUL byte; content paths cannot leave the content."
        return await _send_text(scope, send, 400, text)
    root = os.path.realpath(site.root)
    target = os.path.realpath(os.path.join(root, *segments))
    if target != root and not target.startswith(root + os.sep):  # a symlink out of the content's folder
        return await _not_found(scope, send, site, decoded)
    try:
        info = os.stat(target)
    except OSError:
        return await _not_found(scope, send, site, decoded)
    if stat.S_ISDIR(info.st_mode):
        if segments and not decoded.endswith("/"):
            # Relative, so it is right behind any prefix; "./" keeps a name with ":" from reading as a scheme.
            location = "./" + quote(segments[-1]) + "/" + (("?" + query.decode("latin-1")) if query else "")
            return await _send_redirect(send, location.encode("latin-1"))
        return await _directory(scope, send, site, target, segments, decoded)
    if not stat.S_ISREG(info.st_mode):
        return await _not_found(scope, send, site, decoded)
    await _file(scope, send, site, target, info)


async def _directory(scope: Scope, send: Send, site: Site, folder: str, segments: list[str], shown: str) -> None:
    if not segments and site.index:
        index = os.path.realpath(os.path.join(folder, site.index))
        if index.startswith(folder + os.sep) and os.path.isfile(index):
            if "/" in site.index.strip("/"):  # a document in a subfolder: its relative links work from its own URL
                return await _send_redirect(send, ("./" + quote(site.index.strip("/"))).encode(), status=302)
            return await _file(scope, send, site, index, os.stat(index))
    index = os.path.join(folder, "index.html")
    if os.path.isfile(index):
        return await _file(scope, send, site, index, os.stat(index))
    await _listing(scope, send, folder, shown)


async def _file(scope: Scope, send: Send, site: Site, path: str, info: os.stat_result) -> None:
    headers = _headers(scope)
    size = info.st_size
    # The bundle id makes a redeploy's files new to caches even where a file's size and time did not change.
    etag = f'"{site.bundle_id:x}-{info.st_mtime_ns:x}-{size:x}"'
    modified = formatdate(info.st_mtime, usegmt=True)
    common = [
        (b"etag", etag.encode()),
        (b"last-modified", modified.encode()),
        (b"cache-control", b"no-cache"),  # revalidate: a redeploy changes files at the same URLs
        (b"accept-ranges", b"bytes"),
    ]
    if _not_modified(headers, etag, int(info.st_mtime)):
        await send({"type": "http.response.start", "status": 304, "headers": common})
        return await send({"type": "http.response.body", "body": b""})
    kind = content_type(path)
    start, end = 0, size - 1
    status = 200
    wanted = _range(headers, size, etag, int(info.st_mtime))
    if isinstance(wanted, str):  # "unsatisfiable"
        response = [(b"content-range", f"bytes */{size}".encode()), *common]
        text = f"The range `{headers.get('range')}` is outside the file's {size} bytes."
        return await _send_text(scope, send, 416, text, response)
    if wanted is not None:
        start, end = wanted
        status = 206
        common.append((b"content-range", f"bytes {start}-{end}/{size}".encode()))
    length = end - start + 1 if size else 0
    start_message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", kind.encode()),
            (b"content-length", str(length).encode()),
            (b"x-content-type-options", b"nosniff"),
            *common,
        ],
    }
    if scope["method"] == "HEAD":
        await send(start_message)
        return await send({"type": "http.response.body", "body": b""})
    try:
        handle = open(path, "rb")
    except OSError:
        return await _not_found(scope, send, site, os.path.relpath(path, site.root))
    try:
        await send(start_message)
        handle.seek(start)
        left = length
        while True:
            data = await asyncio.to_thread(handle.read, min(CHUNK, left)) if left else b""
            left -= len(data)
            more = bool(data) and left > 0
            await send({"type": "http.response.body", "body": data, "more_body": more})
            if not more:
                return
    finally:
        handle.close()


def _headers(scope: Scope) -> dict[str, str]:
    wanted = (b"if-none-match", b"if-modified-since", b"range", b"if-range", b"accept")
    return {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in wanted}


def _not_modified(headers: dict[str, str], etag: str, mtime: int) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present (weak comparison), else If-Modified-Since."""
    if "if-none-match" in headers:
        tags = [t.strip().removeprefix("W/") for t in headers["if-none-match"].split(",")]
        return "*" in tags or etag in tags
    since = _date(headers.get("if-modified-since"))
    return since is not None and mtime <= since


def _range(headers: dict[str, str], size: int, etag: str, mtime: int) -> tuple[int, int] | str | None:
    """One `bytes=` range as (first, last), "unsatisfiable", or None for the whole file. Several ranges, or a
    malformed header, get the whole file (RFC 9110 14.2 lets a server ignore Range)."""
    value = headers.get("range", "").strip()
    if not value.startswith("bytes=") or "," in value:
        return None
    if_range = headers.get("if-range")
    if if_range is not None:
        matches = if_range.strip() == etag if if_range.strip().startswith('"') else _date(if_range) == mtime
        if not matches:
            return None
    first, dash, last = value[6:].strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()):
        return None
    if last and not last.isdigit():
        return None
    if not first:  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            return "unsatisfiable"
        return max(size - count, 0), size - 1
    begin = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < begin:
        return None
    if begin >= size:
        return "unsatisfiable"
    return begin, end


def _date(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(parsedate_to_datetime(text).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


async def _listing(scope: Scope, send: Send, folder: str, shown: str) -> None:
    """A folder with no index.html: a page listing it, folders first."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: (not e.is_dir(), e.name.lower()))
    except OSError:
        entries = []
    title = html.escape(f"Files in /{shown.lstrip('/')}")
    items = []
    for entry in entries:
        name = entry.name + ("/" if entry.is_dir() else "")
        items.append(f'<li><a href="./{quote(name)}">{html.escape(name)}</a></li>')
    body = (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body><h1>{title}</h1>\n<p>This folder has no index.html, so here is what it holds.</p>\n"
        f"<ul>\n{chr(10).join(items) or '<li>(empty)</li>'}\n</ul></body></html>\n"
    ).encode()
    await _send(scope, send, 200, body, "text/html; charset=utf-8", [(b"cache-control", b"no-cache")])


async def _not_found(scope: Scope, send: Send, site: Site, shown: str) -> None:
    text = (
        f"Not found: `/{shown.lstrip('/')}` is not a file of this content (bundle {site.bundle_id}); "
        "check the link, or deploy a bundle that has it."
    )
    await _send_text(scope, send, 404, text)


async def _send_text(
    scope: Scope, send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """An error as a small HTML page for browsers, plain text for everything else."""
    accept = _headers(scope).get("accept", "")
    if "text/html" in accept:
        body = (
            f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{status}</title></head>\n'
            f"<body><h1>{status}</h1>\n<p>{html.escape(text)}</p></body></html>\n"
        ).encode()
        return await _send(scope, send, status, body, "text/html; charset=utf-8", headers or [])
    await _send(scope, send, status, (text + "\n").encode(), "text/plain; charset=utf-8", headers or [])


async def _send(
    scope: Scope, send: Send, status: int, body: bytes, kind: str, headers: list[tuple[bytes, bytes]]
) -> None:
    start = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


async def _send_redirect(send: Send, location: bytes, status: int = 301) -> None:
    headers = [(b"location", location), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
