"""`/login/oidc` and its callback: sign-in through the OpenID provider of `[oidc]` (publishing/sso.py). Any failure
shows the login page with the reason, and no session starts."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from packyard.errors import PackyardError
from packyard.publishing import signin, sso
from packyard.publishing.identity import user_from_claims
from packyard.web.auth_pages import login_form, safe_next
from packyard.web.error_pages import PageRoute
from packyard.web.errors import PageError
from packyard.web.session import context, secure_cookies, set_session_cookie

router = APIRouter(include_in_schema=False, route_class=PageRoute)
# The pending sign-in (publishing/sso.py), sent back only to these two paths.
PENDING_COOKIE = signin.COOKIE_PREFIX + "oidc"
PENDING_PATH = "/login/oidc"


def _configured(request: Request) -> None:
    if not context(request).settings.oidc.enabled:
        raise PageError(
            "Single sign-on is not set up on this server (`[oidc] issuer` is empty); sign in with a password.", 404
        )


@router.get(PENDING_PATH)
def start(request: Request, next: str = "/") -> Response:
    """To the provider's authorization endpoint, the pending sign-in kept in this browser's cookie."""
    _configured(request)
    app = context(request)
    oidc = app.settings.oidc
    target = safe_next(next)
    try:
        url, pending = sso.begin(
            oidc, app.issuers.get(oidc.issuer), app.settings.server.address, app.settings.token_secret(), target
        )
    except PackyardError as exc:
        return login_form(request, next=target, error=exc.message, status=exc.status_code)
    response = RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})
    response.set_cookie(
        PENDING_COOKIE,
        pending,
        max_age=sso.PENDING_LIFETIME,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back, not on cross-site subrequests
        secure=secure_cookies(request),
        path=PENDING_PATH,
    )
    return response


@router.get(sso.CALLBACK_PATH)
def callback(request: Request) -> Response:
    """The provider's answer: checked, exchanged and verified, then the user's session starts."""
    _configured(request)
    app = context(request)
    oidc = app.settings.oidc
    target = "/"
    try:
        pending = sso.read_pending(app.settings.token_secret(), request.cookies.get(PENDING_COOKIE))
        target = safe_next(pending.next)
        claims = sso.finish(
            oidc, app.issuers.get(oidc.issuer), app.settings.server.address, pending, dict(request.query_params)
        )
        with app.db.session() as session:
            user = user_from_claims(session, oidc, claims)
            token = signin.start_session(session, user, timedelta(seconds=app.settings.web.session_lifetime))
    except PackyardError as exc:
        response = login_form(request, next=target, error=exc.message, status=exc.status_code)
    else:
        app.sync()  # a changed role or group reaches this process's caches before the next request
        response = RedirectResponse(target, status_code=303, headers={"cache-control": "no-store"})
        set_session_cookie(request, response, token)
    # Spent either way: a pending sign-in is answered once.
    response.delete_cookie(PENDING_COOKIE, path=PENDING_PATH, httponly=True, samesite="lax")
    return response
