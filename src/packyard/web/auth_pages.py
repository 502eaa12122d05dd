"""Sign in, sign out, and the home page."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from packyard.db import utcnow
from packyard.errors import PackyardError
from packyard.publishing import content as contents
from packyard.publishing import signin, signin_throttle, sso
from packyard.publishing.errors import Forbidden
from packyard.publishing.proxy.origins import ISSUE_PATH, content_target, redeem_url
from packyard.repository.models import Project, Repository, Subscription
from packyard.web.error_pages import PageRoute
from packyard.web.errors import PageError
from packyard.web.render import render
from packyard.web.session import COOKIE, WebUser, check_csrf, context, current_user, set_session_cookie, signed_in

router = APIRouter(include_in_schema=False, route_class=PageRoute)


def safe_next(target: str | None) -> str:
    """`next` only ever leads to a path on this server: no scheme, host, `//` or backslash tricks."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ord(ch) < 0x20 or ch == "\\" for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    if target.startswith(("/login", "/logout")) and not target.startswith(ISSUE_PATH + "?"):
        return "/"  # but a content ticket, asked for before signing in, is issued after
    return target


def login_form(request: Request, *, next: str, username: str = "", error: str = "", status: int = 200) -> Response:
    """The login page: the provider's button when `[oidc]` is set, and the password form (a break-glass
    administrator's way in when the provider is down)."""
    oidc = context(request).settings.oidc
    return render(
        request,
        "login.html",
        section="home",
        status=status,
        next=next,
        username=username,
        error=error,
        provider=sso.provider_name(oidc) if oidc.enabled else "",
    )


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    if current_user(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return login_form(request, next=safe_next(next))


@router.post("/login", dependencies=[Depends(check_csrf)])
async def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    target = safe_next(next)
    try:
        token = await asyncio.to_thread(_sign_in, request, username.strip(), password)
    except PackyardError as exc:
        page = login_form(request, next=target, username=username, error=exc.message, status=exc.status_code)
        page.headers.update(exc.headers)  # a 429's Retry-After
        return page
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, token)
    return response


def _sign_in(request: Request, username: str, password: str) -> str:
    app = context(request)
    attempt = signin_throttle.attempt_of(username, request.client.host if request.client else "")
    with app.db.session() as session:  # committed first: the attempt counts as failed until its password is right
        signin_throttle.begin(session, attempt, utcnow())
    try:
        with app.db.session() as session:
            user = signin.check_password(session, username, password)
            signin_throttle.forgive(session, attempt)
            return signin.start_session(session, user, timedelta(seconds=app.settings.web.session_lifetime))
    except Forbidden:  # the right password for a locked user: not a guess, so not counted against the name
        with app.db.session() as session:
            signin_throttle.forgive(session, attempt)
        raise


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request) -> Response:
    token = request.cookies.get(COOKIE)
    if token:
        with context(request).db.session() as session:
            signin.end_session(session, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get(ISSUE_PATH)
def content_ticket(request: Request, user: Annotated[WebUser, Depends(signed_in)], next: str = "") -> Response:
    """A signed-in browser on its way to content on the content origin: a single-use ticket for it, redeemed there
    (`proxy/origins.py`). An anonymous one signs in first and comes back here."""
    app = context(request)
    address = app.settings.server.content_address
    if not address:
        raise PageError(
            "Content is served on this origin (`[server] content_address` is not set); no ticket needed.", 404
        )
    target = content_target(next)
    with app.db.session() as session:
        ticket = signin.issue_ticket(session, user.id)
    return RedirectResponse(
        redeem_url(address, ticket, target),
        status_code=303,
        headers={"cache-control": "no-store", "referrer-policy": "no-referrer"},
    )


@router.get("/")
def home(request: Request, user: Annotated[WebUser, Depends(signed_in)]) -> Response:
    with context(request).db.session() as session:
        repositories = session.scalar(select(func.count()).select_from(Repository)) or 0
        projects = (
            session.scalar(
                select(func.count(func.distinct(Project.name))).join(
                    Subscription, Subscription.source_id == Project.source_id
                )
            )
            or 0
        )
        visible = len(contents.visible(session, user.caller))
    return render(request, "home.html", section="home", repositories=repositories, projects=projects, content=visible)
