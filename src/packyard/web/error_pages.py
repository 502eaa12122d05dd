"""What goes wrong on a page becomes an HTML page (error.html) saying what to do; anonymous visitors sign in.

Every page route is a `PageRoute`, whose handler renders its errors here, and `not_found` answers the page paths
no route matches (`/repos/nope/` is a 404 page, not text).
"""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import quote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from packyard.errors import PackyardError
from packyard.http_errors import SurfaceNotFound, SurfaceRoute
from packyard.web.errors import SignInRequired
from packyard.web.render import render

# The paths that are pages even when no route matched.
PAGE_PREFIXES = ("/repos/", "/connect/", "/admin/", "/profile/", "/static/", "/login", "/logout")


def error_page(request: Request, message: str, status: int) -> Response:
    return render(
        request,
        "error.html",
        section=getattr(request.state, "section", "home"),
        status=status,
        message=message,
        title=HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error",
    )


def sign_in_redirect(path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(path, safe='/')}", status_code=303)


def page_message(request: Request, exc: Exception) -> tuple[str, int]:
    """The sentence and status an error shows as on a page."""
    if isinstance(exc, PackyardError):
        return exc.message, exc.status_code
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ())[1:]) or "the request"
        return f"The form field `{field}` is not right: {first.get('msg', 'invalid')}; correct it and retry.", 400
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return f"There is no page at `{request.url.path}`; start again from the home page.", 404
        if exc.status_code == 405:
            return f"`{request.url.path}` does not take {request.method} requests; use the page's links.", 405
        return str(exc.detail), exc.status_code
    return "Something went wrong on the server; try again, and tell an administrator if it repeats.", 500


def render_error(request: Request, exc: Exception) -> Response:
    """A page route's error as a page; an anonymous visitor's GET goes to sign in, and comes back after."""
    if isinstance(exc, SignInRequired):
        if request.method in ("GET", "HEAD"):
            return sign_in_redirect(exc.path)
        return error_page(request, "Your session has ended; sign in again, then repeat what you were doing.", 401)
    return error_page(request, *page_message(request, exc))


class PageRoute(SurfaceRoute):
    """A web page's route: its errors are pages."""

    render_error = staticmethod(render_error)


not_found = SurfaceNotFound(render_error, prefixes=PAGE_PREFIXES, paths=("/",))
