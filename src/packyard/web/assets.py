"""The pages' CSS and JavaScript at `/static/{name}`, with URLs that carry a hash of the content."""

from __future__ import annotations

import hashlib
import mimetypes
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from packyard.web.errors import PageError

FOLDER = Path(__file__).parent / "static"
router = APIRouter()


class Asset:
    def __init__(self, path: Path) -> None:
        self.body = path.read_bytes()
        self.digest = hashlib.sha256(self.body).hexdigest()[:12]
        self.media_type = (mimetypes.guess_type(path.name)[0] or "application/octet-stream") + (
            "; charset=utf-8" if path.suffix in (".css", ".js") else ""
        )


@cache
def _assets() -> dict[str, Asset]:
    return {path.name: Asset(path) for path in FOLDER.iterdir() if path.is_file()}


def static_url(name: str) -> str:
    """`/static/{name}?v={hash}`: a new file is a new URL, so browsers may keep each one forever."""
    return f"/static/{name}?v={_assets()[name].digest}"


@router.get("/static/{name}", include_in_schema=False)
def asset(request: Request, name: str) -> Response:
    found = _assets().get(name)
    if found is None:
        raise PageError(f"There is no file `{name}` in `/static/`; the pages link to the files that exist.", 404)
    etag = f'"{found.digest}"'
    versioned = request.query_params.get("v") == found.digest
    headers = {
        "etag": etag,
        "cache-control": "public, max-age=31536000, immutable" if versioned else "no-cache",
        "x-content-type-options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)
