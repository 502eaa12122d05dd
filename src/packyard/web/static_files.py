"""`/static/{name}`: the pages' CSS and JavaScript, kept forever by browsers when the URL carries the hash."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from packyard.web.assets import assets
from packyard.web.error_pages import PageRoute
from packyard.web.errors import PageError

router = APIRouter(route_class=PageRoute)


@router.get("/static/{name}", include_in_schema=False)
def asset(request: Request, name: str) -> Response:
    found = assets().get(name)
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
