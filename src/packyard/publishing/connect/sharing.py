"""Connect's API for sharing: users, groups and their members, and a content's permissions (what posit-sdk's
`client.users`, `client.groups` and `content.permissions` call). Lists are pages: `{"results", "current_page",
"total"}`, asked for with `page_number` (from 1) and `page_size` (at most 500)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from packyard.publishing import content as contents
from packyard.publishing import groups, permissions, signin, users
from packyard.publishing.connect.handlers import caller as _caller
from packyard.publishing.connect.handlers import in_thread as _in_thread
from packyard.publishing.connect.handlers import json_body as _json
from packyard.publishing.connect.routing import ConnectRoute
from packyard.publishing.errors import PublishingError
from packyard.publishing.groups import require_admin

router = APIRouter(prefix="/__api__", route_class=ConnectRoute)
MAX_PAGE_SIZE = 500
# Connect's role names, and Packyard's own, to Packyard's.
ROLE_NAMES = {"administrator": "admin", "admin": "admin", "publisher": "publisher", "viewer": "viewer"}


def _page(page_number: str, page_size: str) -> tuple[int, int]:
    """(offset, limit) of a page, from the query's strings."""
    try:
        number, size = int(page_number), int(page_size)
    except ValueError:
        raise PublishingError(
            f"`page_number` {page_number!r} and `page_size` {page_size!r} must be whole numbers, e.g. "
            "`?page_number=1&page_size=100`."
        ) from None
    if number < 1 or not 1 <= size <= MAX_PAGE_SIZE:
        raise PublishingError(f"Ask for `page_number` from 1 and a `page_size` from 1 to {MAX_PAGE_SIZE}.")
    return (number - 1) * size, size


def _paged(results: list[dict[str, Any]], offset: int, size: int, total: int) -> dict[str, Any]:
    return {"results": results, "current_page": offset // size + 1, "total": total}


# -- users ----------------------------------------------------------------------------------------------------


@router.get("/v1/users")
async def list_users(
    request: Request,
    prefix: str = "",
    user_role: str = "",
    account_status: str = "",
    page_number: str = "1",
    page_size: str = "20",
) -> dict[str, Any]:
    await _caller(request)
    offset, size = _page(page_number, page_size)
    roles = [ROLE_NAMES.get(r.strip(), r.strip()) for r in user_role.split("|") if r.strip()]
    statuses = {s.strip() for s in account_status.split("|") if s.strip()}

    def work(session: Any) -> dict[str, Any]:
        if statuses:  # locked, or licensed (every unlocked user here), or inactive (none)
            found, _ = users.find_users(session, prefix, roles)
            found = [u for u in found if ("locked" if u.locked else "licensed") in statuses]
            return _paged([users.user_json(u) for u in found[offset : offset + size]], offset, size, len(found))
        found, total = users.find_users(session, prefix, roles, offset, size)
        return _paged([users.user_json(u) for u in found], offset, size, total)

    return await _in_thread(request, work)


@router.get("/v1/users/{guid}")
async def get_user(request: Request, guid: str) -> dict[str, Any]:
    await _caller(request)
    return await _in_thread(request, lambda s: users.user_json(users.get_user_by_guid(s, guid)))


@router.post("/v1/users")
async def create_user(request: Request) -> dict[str, Any]:
    caller = await _caller(request)
    require_admin(caller, "creating users")
    body = await _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("username"), str):
        raise PublishingError('Send {"username": "ana", "user_role": "viewer"}, with "email" and "password" if wanted.')
    role = _role(body.get("user_role", "viewer"))

    def work(session: Any) -> dict[str, Any]:
        user = users.create_user(session, body["username"], role, str(body.get("email") or ""))
        if isinstance(body.get("password"), str) and body["password"]:
            signin.set_password(session, user.username, body["password"])
        return users.user_json(user)

    return await _in_thread(request, work)


@router.put("/v1/users/{guid}")
async def update_user(request: Request, guid: str) -> dict[str, Any]:
    caller = await _caller(request)
    require_admin(caller, "changing a user")
    body = await _json(request)
    if not isinstance(body, dict):
        raise PublishingError('Send a JSON object of fields to change, e.g. {"user_role": "publisher"}.')

    def work(session: Any) -> dict[str, Any]:
        user = users.get_user_by_guid(session, guid)
        if "user_role" in body:
            users.set_role(session, user.username, _role(body["user_role"]))
        if isinstance(body.get("email"), str):
            user.email = body["email"]
        return users.user_json(user)

    return await _in_thread(request, work)


@router.post("/v1/users/{guid}/lock")
async def lock_user(request: Request, guid: str) -> dict[str, Any]:
    caller = await _caller(request)
    require_admin(caller, "locking a user")
    body = await _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("locked"), bool):
        raise PublishingError('Send {"locked": true} to lock the user, or {"locked": false} to unlock them.')

    def work(session: Any) -> dict[str, Any]:
        user = users.get_user_by_guid(session, guid)
        if user.id == caller.user_id and body["locked"]:
            raise PublishingError("You cannot lock yourself out; ask another administrator.")
        return users.user_json(signin.set_locked(session, user.username, body["locked"]))

    return await _in_thread(request, work)


def _role(value: Any) -> str:
    role = ROLE_NAMES.get(value) if isinstance(value, str) else None
    if role is None:
        raise PublishingError(f"`user_role` is {value!r}; use `viewer`, `publisher` or `administrator`.")
    return role


# -- groups ----------------------------------------------------------------------------------------------------


@router.get("/v1/groups")
async def list_groups(request: Request, prefix: str = "", page_number: str = "1", page_size: str = "20") -> Any:
    await _caller(request)
    offset, size = _page(page_number, page_size)

    def work(session: Any) -> dict[str, Any]:
        found, total = groups.find(session, prefix, offset, size)
        return _paged([groups.group_json(g) for g in found], offset, size, total)

    return await _in_thread(request, work)


@router.post("/v1/groups")
async def create_group(request: Request) -> dict[str, Any]:
    caller = await _caller(request)
    require_admin(caller, "creating a group")
    body = await _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise PublishingError('Send {"name": "analysts"}.')
    return await _in_thread(request, lambda s: groups.group_json(groups.create(s, body["name"])))


@router.get("/v1/groups/{guid}")
async def get_group(request: Request, guid: str) -> dict[str, Any]:
    await _caller(request)
    return await _in_thread(request, lambda s: groups.group_json(groups.get(s, guid)))


@router.delete("/v1/groups/{guid}", status_code=204)
async def delete_group(request: Request, guid: str) -> Response:
    caller = await _caller(request)
    require_admin(caller, "deleting a group")
    await _in_thread(request, lambda s: groups.delete(s, groups.get(s, guid)))
    return Response(status_code=204)


@router.get("/v1/groups/{guid}/members")
async def group_members(request: Request, guid: str, page_number: str = "1", page_size: str = "20") -> Any:
    await _caller(request)
    offset, size = _page(page_number, page_size)

    def work(session: Any) -> dict[str, Any]:
        found = groups.members(session, groups.get(session, guid))
        return _paged([users.user_json(u) for u in found[offset : offset + size]], offset, size, len(found))

    return await _in_thread(request, work)


@router.post("/v1/groups/{guid}/members", status_code=204)
async def add_group_member(request: Request, guid: str) -> Response:
    caller = await _caller(request)
    require_admin(caller, "changing a group's members")
    body = await _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("user_guid"), str):
        raise PublishingError('Send {"user_guid": "<the user\'s guid>"}.')
    await _in_thread(
        request, lambda s: groups.add_member(s, groups.get(s, guid), users.get_user_by_guid(s, body["user_guid"]))
    )
    return Response(status_code=204)


@router.delete("/v1/groups/{guid}/members/{user_guid}", status_code=204)
async def remove_group_member(request: Request, guid: str, user_guid: str) -> Response:
    caller = await _caller(request)
    require_admin(caller, "changing a group's members")
    await _in_thread(
        request, lambda s: groups.remove_member(s, groups.get(s, guid), users.get_user_by_guid(s, user_guid))
    )
    return Response(status_code=204)


# -- a content's permissions -------------------------------------------------------------------------------------


@router.get("/v1/content/{guid}/permissions")
async def list_permissions(request: Request, guid: str) -> list[dict[str, Any]]:
    caller = await _caller(request)
    return await _in_thread(request, lambda s: permissions.listing(s, contents.owned(s, caller, guid)))


@router.post("/v1/content/{guid}/permissions")
async def add_permission(request: Request, guid: str) -> dict[str, Any]:
    caller = await _caller(request)
    body = await _json(request)
    return await _in_thread(request, lambda s: permissions.add(s, contents.writable(s, caller, guid), body))


@router.get("/v1/content/{guid}/permissions/{permission_id}")
async def get_permission(request: Request, guid: str, permission_id: str) -> dict[str, Any]:
    caller = await _caller(request)

    def work(session: Any) -> dict[str, Any]:
        content = contents.owned(session, caller, guid)
        found = next((p for p in permissions.listing(session, content) if p["id"] == permission_id), None)
        if found is None:
            permissions.get(session, content, permission_id)  # raises its NotFound
        return found or {}

    return await _in_thread(request, work)


@router.put("/v1/content/{guid}/permissions/{permission_id}")
async def change_permission(request: Request, guid: str, permission_id: str) -> dict[str, Any]:
    caller = await _caller(request)
    body = await _json(request)
    return await _in_thread(
        request, lambda s: permissions.change(s, contents.writable(s, caller, guid), permission_id, body)
    )


@router.delete("/v1/content/{guid}/permissions/{permission_id}", status_code=204)
async def remove_permission(request: Request, guid: str, permission_id: str) -> Response:
    caller = await _caller(request)
    await _in_thread(request, lambda s: permissions.remove(s, contents.writable(s, caller, guid), permission_id))
    return Response(status_code=204)
