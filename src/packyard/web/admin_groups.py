"""`/admin/groups/`: groups of users that content can be shared with, and their members, for administrators.
The same domain functions as `packyard group ...`, so the same change-log events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from packyard.errors import PackyardError
from packyard.publishing import groups, users
from packyard.web.admin import CHANGE, Admin, Notice, _attempt, _in_admin, _page
from packyard.web.error_pages import PageRoute
from packyard.web.errors import PageError
from packyard.web.session import context

router = APIRouter(
    prefix="/admin/groups", include_in_schema=False, dependencies=[Depends(_in_admin)], route_class=PageRoute
)


def _groups(request: Request, notice: Notice | None = None, status: int = 200, typed_name: str = "") -> HTMLResponse:
    with context(request).db.session() as session:
        counts = groups.member_counts(session)
        found, _ = groups.find(session)
        rows = [(g.guid, g.name, counts.get(g.id, 0)) for g in found]
    return _page(request, "groups.html", notice=notice, status=status, groups=rows, typed_name=typed_name)


@router.get("/")
def groups_page(request: Request, user: Admin) -> HTMLResponse:
    return _groups(request)


@router.post("/", dependencies=CHANGE)
def group_create(request: Request, name: Annotated[str, Form()] = "") -> HTMLResponse:
    def write() -> str:
        with context(request).db.session() as session:
            group = groups.create(session, name)
            return f"Created group `{group.name}`; open it to add members."

    notice, status = _attempt(request, write)
    return _groups(request, notice, status, name if status != 200 else "")


@router.post("/{guid}/delete", dependencies=CHANGE)
def group_delete(request: Request, guid: str) -> HTMLResponse:
    def write() -> str:
        with context(request).db.session() as session:
            group = groups.get(session, guid)
            groups.delete(session, group)
            return f"Deleted group `{group.name}`; content shared with it is no longer shared with its members."

    return _groups(request, *_attempt(request, write))


# -- one group's members ------------------------------------------------------------------------------------------


def _group(
    request: Request, guid: str, notice: Notice | None = None, status: int = 200, typed_user: str = ""
) -> HTMLResponse:
    with context(request).db.session() as session:
        try:
            group = groups.get(session, guid)
        except PackyardError:
            raise PageError(f"There is no group `{guid}`; the Groups page lists every group.", 404) from None
        members = groups.members(session, group)
        member_ids = {m.id for m in members}
        candidates = [u.username for u in users.find_users(session)[0] if u.id not in member_ids]
    return _page(
        request,
        "group.html",
        notice=notice,
        status=status,
        group=group,
        members=members,
        candidates=candidates,
        typed_user=typed_user,
    )


@router.get("/{guid}/")
def group_page(request: Request, user: Admin, guid: str) -> HTMLResponse:
    return _group(request, guid)


@router.post("/{guid}/members", dependencies=CHANGE)
def member_add(request: Request, guid: str, username: Annotated[str, Form()] = "") -> HTMLResponse:
    name = username.strip()

    def write() -> str:
        with context(request).db.session() as session:
            group = groups.get(session, guid)
            if not name:
                raise PageError("Give the login name of the user to add.")
            if not groups.add_member(session, group, users.get_user(session, name)):
                return f"`{name}` was a member of `{group.name}` already."
            return f"Added `{name}` to `{group.name}`; they see what is shared with the group now."

    notice, status = _attempt(request, write)
    return _group(request, guid, notice, status, username if status != 200 else "")


@router.post("/{guid}/members/{username}/remove", dependencies=CHANGE)
def member_remove(request: Request, guid: str, username: str) -> HTMLResponse:
    def write() -> str:
        with context(request).db.session() as session:
            group = groups.get(session, guid)
            groups.remove_member(session, group, users.get_user(session, username))
            return f"Removed `{username}` from `{group.name}`; what they saw through it is closed to them now."

    return _group(request, guid, *_attempt(request, write))
