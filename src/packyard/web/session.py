"""Who is signed in: the session cookie, the FastAPI dependencies pages use, and CSRF checks on every POST."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from packyard.context import AppContext
from packyard.publishing import signin
from packyard.publishing.users import Caller
from packyard.web.errors import CsrfRejected, PageError, SignInRequired

COOKIE = signin.SESSION_COOKIE
PRE_SESSION_COOKIE = signin.CSRF_COOKIE  # the login form's CSRF token, before there is a session


@dataclass(frozen=True)
class WebUser:
    id: int
    username: str
    role: str
    caller: Caller  # what the API checks permissions on: pages call the same checks with it
    csrf_token: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_publish(self) -> bool:
        return self.role in ("admin", "publisher")


def context(request: Request) -> AppContext:
    return request.app.state.packyard


def current_user(request: Request) -> WebUser | None:
    """The signed-in user of this request (read once per request), or None."""
    if hasattr(request.state, "web_user"):
        return request.state.web_user
    user = None
    token = request.cookies.get(COOKIE)
    if token:
        with context(request).db.session() as session:
            found = signin.find_session(session, token, signin.MAIN)
        if found is not None:
            c = found.caller
            user = WebUser(c.user_id, c.username, c.role, c, found.csrf_token)
    request.state.web_user = user
    return user


def signed_in(request: Request) -> WebUser:
    user = current_user(request)
    if user is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path)
    return user


def admin_only(user: Annotated[WebUser, Depends(signed_in)]) -> WebUser:
    if not user.is_admin:
        raise PageError(f"User `{user.username}` is a {user.role}; only administrators may open this page.", 403)
    return user


def publisher_or_admin(user: Annotated[WebUser, Depends(signed_in)]) -> WebUser:
    if not user.can_publish:
        raise PageError(
            f"User `{user.username}` is a viewer; publishers and administrators may do this. "
            "An administrator can change your role.",
            403,
        )
    return user


def csrf_token(request: Request) -> str:
    """The token this request's forms carry: the session's, or before sign-in the pre-session cookie's."""
    user = current_user(request)
    if user is not None:
        return user.csrf_token
    token = request.cookies.get(PRE_SESSION_COOKIE) or getattr(request.state, "pre_session_csrf", None)
    if not token:
        token = request.state.pre_session_csrf = secrets.token_urlsafe(32)
    return token


async def check_csrf(request: Request) -> None:
    """Every POST: the form's `csrf_token` must equal the session's (or the login form's cookie)."""
    form = await request.form()
    sent = form.get("csrf_token")
    user = current_user(request)
    expected = user.csrf_token if user is not None else request.cookies.get(PRE_SESSION_COOKIE)
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfRejected()


def secure_cookies(request: Request) -> bool:
    return context(request).settings.server.address.startswith("https://")


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=context(request).settings.web.session_lifetime,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/",
    )
    response.delete_cookie(PRE_SESSION_COOKIE, path="/")


def keep_pre_session_token(request: Request, response: Response) -> None:
    """Set the login form's token cookie when this response made a new one."""
    token = getattr(request.state, "pre_session_csrf", None)
    if token:
        response.set_cookie(
            PRE_SESSION_COOKIE, token, httponly=True, samesite="lax", secure=secure_cookies(request), path="/"
        )
