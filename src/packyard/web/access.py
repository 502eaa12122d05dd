"""A content's Access tab: who may open it (its access type), and the users and groups it is shared with, as
viewers or collaborators. Changes go through `contents.writable` and `permissions`, as the Connect API's do, and
this process applies them at once (other nodes within a second, from the change log)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from packyard.publishing import content as contents
from packyard.publishing import groups, operations, permissions, users
from packyard.publishing.errors import PublishingError
from packyard.publishing.models import Content
from packyard.web.content import Item, User_, _item, _load, _page, _redirect, _require_owner, _section
from packyard.web.error_pages import PageRoute
from packyard.web.session import WebUser, check_csrf, context

router = APIRouter(include_in_schema=False, dependencies=[Depends(_section)], route_class=PageRoute)

ACCESS = (
    ("acl", "Specific users", "Its owner, the users and groups it is shared with, and administrators."),
    ("logged_in", "All users, login required", "Anyone with an account on this server."),
    ("all", "Anyone, no login required", "Anyone who can reach the server, without signing in."),
)
# (value, label, help) of the roles a share gives; `owner` is Connect's word for a collaborator.
ROLES = (
    (permissions.VIEWER, "Viewer", "Opens the content."),
    (permissions.OWNER, "Collaborator", "Deploys it, changes its settings and variables, reads its logs."),
)
SUGGESTED = 500  # names offered while typing; past that, people type the name
# What the tab says after a change, from its redirect's query: `?shared=user:vera`.
DONE = {
    "shared": "Shared with {}.",
    "changed": "Changed the role of {}.",
    "kept": "{} had that role already.",
    "removed": "Removed {}: the content is no longer shared with them.",
}


def _principal_words(label: str) -> str:
    """`user:vera` as "user `vera`"."""
    kind, _, name = label.partition(":")
    return f"{kind} `{name}`" if kind in permissions.PRINCIPAL_TYPES and name else ""


def _suggestions(session: Session, content: Content) -> list[tuple[str, str]]:
    """(name, what it is) of the users and groups the content could be shared with, for the form's datalist."""
    found, _ = users.find_users(session, limit=SUGGESTED)
    named = [(u.username, f"user, {u.role}") for u in found if u.id != content.owner_id]
    group_rows, _ = groups.find(session, limit=SUGGESTED)
    return named + [(g.name, "group") for g in group_rows]


def _values(session: Session, user: WebUser, guid: str) -> tuple[Item, dict[str, Any]]:
    """The item and what its tab shows: the shares and suggestions only to those who may change them (as the API's
    permission list is)."""
    item = _item(session, user, guid)
    values: dict[str, Any] = {"shares": [], "suggestions": []}
    if item.can_change:
        values["shares"] = permissions.shares(session, item.content)
        values["suggestions"] = _suggestions(session, item.content)
    return item, values


async def _access_page(
    request: Request,
    user: WebUser,
    guid: str,
    *,
    status: int = 200,
    notice: str = "",
    error: str = "",
    share_error: str = "",
    form: dict[str, str] | None = None,
) -> Response:
    item, values = await operations.in_thread(context(request), lambda s: _values(s, user, guid))
    return _page(
        request,
        item,
        "access",
        status=status,
        choices=ACCESS,
        roles=ROLES,
        notice=notice,
        error=error,
        share_error=share_error,
        form=form or {"principal": "", "role": permissions.VIEWER},
        **values,
    )


@router.get("/connect/apps/{guid}/access")
async def access_tab(request: Request, user: User_, guid: str, saved: int = 0) -> Response:
    notice = "Saved: the new access applies to the next request." if saved else ""
    for key, sentence in DONE.items():
        words = _principal_words(request.query_params.get(key, ""))
        if words:
            said = sentence.format(words)
            notice = said[0].upper() + said[1:]
    return await _access_page(request, user, guid, notice=notice)


@router.post("/connect/apps/{guid}/access", dependencies=[Depends(check_csrf)])
async def access_save(request: Request, user: User_, guid: str, access_type: Annotated[str, Form()] = "") -> Response:
    item = await _load(request, user, guid)
    _require_owner(item, user, "access settings")
    try:
        await operations.patch(context(request), user.caller, guid, {"access_type": access_type})
    except PublishingError as exc:
        return await _access_page(request, user, guid, status=exc.status_code, error=exc.message)
    return _redirect(guid, "access", "saved=1")


async def _change(request: Request, user: WebUser, guid: str, write: Callable[[Session, Content], str]) -> str:
    """Run a sharing change on the content the user may change now; its `?key=value` for the tab's notice."""
    item = await _load(request, user, guid)
    _require_owner(item, user, "access settings")
    ctx = context(request)
    done = await operations.in_thread(ctx, lambda s: write(s, contents.writable(s, user.caller, guid)))
    await asyncio.to_thread(ctx.sync)  # the proxy here lets in (or keeps out) the people it names at once
    return done


@router.post("/connect/apps/{guid}/access/share", dependencies=[Depends(check_csrf)])
async def share(
    request: Request,
    user: User_,
    guid: str,
    principal: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = permissions.VIEWER,
) -> Response:
    def write(session: Session, content: Content) -> str:
        if not principal.strip():
            raise PublishingError("Give the name of a user or a group to share the content with.")
        found = permissions.principal_named(session, principal)
        _, what = permissions.grant(session, content, found, permissions.role_named(role))
        return urlencode({"shared" if what == "added" else what: permissions.label(found)})

    try:
        done = await _change(request, user, guid, write)
    except PublishingError as exc:
        form = {"principal": principal, "role": role}
        return await _access_page(request, user, guid, status=exc.status_code, share_error=exc.message, form=form)
    return _redirect(guid, "access", done)


@router.post("/connect/apps/{guid}/access/{permission_id}/role", dependencies=[Depends(check_csrf)])
async def change_role(
    request: Request, user: User_, guid: str, permission_id: str, role: Annotated[str, Form()] = ""
) -> Response:
    def write(session: Session, content: Content) -> str:
        row = permissions.get(session, content, permission_id)
        before = row.role
        permissions.set_role(session, content, row, permissions.role_named(role))
        return urlencode(
            {"changed" if row.role != before else "kept": permissions.label(permissions.principal_of(session, row))}
        )

    try:
        done = await _change(request, user, guid, write)
    except PublishingError as exc:
        return await _access_page(request, user, guid, status=exc.status_code, error=exc.message)
    return _redirect(guid, "access", done)


@router.post("/connect/apps/{guid}/access/{permission_id}/remove", dependencies=[Depends(check_csrf)])
async def remove(request: Request, user: User_, guid: str, permission_id: str) -> Response:
    def write(session: Session, content: Content) -> str:
        row = permissions.get(session, content, permission_id)
        label = permissions.label(permissions.principal_of(session, row))
        permissions.remove(session, content, permission_id)
        return urlencode({"removed": label})

    try:
        done = await _change(request, user, guid, write)
    except PublishingError as exc:
        return await _access_page(request, user, guid, status=exc.status_code, error=exc.message)
    return _redirect(guid, "access", done)
