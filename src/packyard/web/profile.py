"""`/profile/keys`: a signed-in user's own API keys, as on Connect: list, create (shown once, with the rsconnect
command that uses it), revoke. Any role may keep keys; a key acts as its user, with their role and groups."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from packyard.errors import PackyardError
from packyard.publishing import users
from packyard.web import client_setup
from packyard.web.error_pages import PageRoute
from packyard.web.errors import PageError
from packyard.web.render import render
from packyard.web.session import WebUser, check_csrf, context, signed_in


def _in_profile(request: Request) -> None:
    request.state.section = "profile"  # error pages of this area keep its nav


router = APIRouter(
    prefix="/profile", include_in_schema=False, dependencies=[Depends(_in_profile)], route_class=PageRoute
)
Me = Annotated[WebUser, Depends(signed_in)]
# Checked in this order: an anonymous POST is sent to sign in before its form is looked at.
CHANGE = [Depends(signed_in), Depends(check_csrf)]
NAME_LIMIT = 200  # `api_keys.name` is a String(200)


def _keys(
    request: Request,
    user: WebUser,
    notice: tuple[str, str] | None = None,
    status: int = 200,
    created: str = "",
    name: str = "",
) -> HTMLResponse:
    with context(request).db.session() as session:
        rows = [key for key, _ in users.list_keys(session, user.username)]
    return render(
        request,
        "profile/keys.html",
        section="profile",
        status=status,
        notice=notice,
        keys=rows,
        created=created,
        name=name,
        groups=user.caller.groups,
        address=context(request).settings.server.address,
        cacert=client_setup.cacert_option(bool(context(request).settings.server.tls_certificate)),
    )


@router.get("/keys")
def keys_page(request: Request, user: Me) -> HTMLResponse:
    return _keys(request, user)


@router.post("/keys", dependencies=CHANGE)
def key_create(request: Request, user: Me, name: Annotated[str, Form()] = "") -> HTMLResponse:
    label = name.strip()
    try:
        if not label:
            raise PageError("Give the key a name that says what it is for, e.g. `laptop` or `ci`.")
        if len(label) > NAME_LIMIT:
            raise PageError(f"The key's name has {len(label)} characters; use at most {NAME_LIMIT}.")
        with context(request).db.session() as session:
            row, key = users.create_key(session, user.username, label)
    except PackyardError as exc:
        return _keys(request, user, ("error", exc.message), exc.status_code, name=name)
    context(request).sync()
    notice = ("success", f"Created key `{row.name}`. Copy it now: it is not shown again.")
    return _keys(request, user, notice, created=key)


@router.post("/keys/{key_id}/revoke", dependencies=CHANGE)
def key_revoke(request: Request, user: Me, key_id: int) -> HTMLResponse:
    try:
        with context(request).db.session() as session:
            row = users.revoke_key(session, key_id, user.username)
            label = f"`{row.name}` ({row.prefix}…)" if row.name else f"{row.prefix}…"
    except PackyardError as exc:
        return _keys(request, user, ("error", exc.message), exc.status_code)
    context(request).sync()  # the key cache forgets it now, not in CALLER_TTL seconds
    return _keys(request, user, ("success", f"Revoked key {label}; the server refuses it from now on."))
