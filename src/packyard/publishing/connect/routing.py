"""How the Connect API answers errors: Connect's JSON body, from its own routes and for its own paths.

rsconnect prints `error` and reads `code` on `v1/user` (30: invalid key). `ConnectRoute` renders the errors of
every route in `api.py`; `not_found` answers the Connect paths none of them match, so an unknown
`/__api__/v1/...` is Connect's 404 too.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.requests import Request

from packyard.errors import PackyardError
from packyard.http_errors import SurfaceNotFound, SurfaceRoute, as_packyard_error

# What rsconnect calls: `/__api__/v1/...`, `/__api__/server_settings` and the legacy `/__api__/applications/{id}`.
# The rest of `/__api__/` (repository status, transaction dates, the OpenAPI docs) is the repository's.
CONNECT_PREFIXES = ("/__api__/v1/", "/__api__/server_settings", "/__api__/applications/")


def connect_error(exc: PackyardError, status: int | None = None) -> JSONResponse:
    """Connect's error body, `{"error", "code", "payload"}`; `code` is the error's own, else Connect's for the
    status (401: 30, 403: 6, 404: 4, otherwise 3)."""
    code = getattr(exc, "code", None) or {401: 30, 403: 6, 404: 4}.get(status or exc.status_code, 3)
    return JSONResponse({"error": exc.message, "code": code, "payload": None}, status or exc.status_code)


def render_error(request: Request, exc: Exception) -> JSONResponse:
    return connect_error(*as_packyard_error(request, exc))


class ConnectRoute(SurfaceRoute):
    """A Connect API route: its errors are Connect's JSON."""

    render_error = staticmethod(render_error)


not_found = SurfaceNotFound(render_error, prefixes=CONNECT_PREFIXES)
