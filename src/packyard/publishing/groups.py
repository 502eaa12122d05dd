"""Groups of users, which content can be shared with; administrators make them and choose their members."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from packyard.changelog.events import record
from packyard.publishing.errors import Conflict, Forbidden, NotFound, PublishingError
from packyard.publishing.models import Group, GroupMember, User
from packyard.publishing.users import Caller

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,99}$")


def require_admin(caller: Caller, what: str) -> None:
    if not caller.is_admin:
        raise Forbidden(f"User `{caller.username}` is not an administrator; {what} needs role `admin`.")


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


def create(session: Session, name: str) -> Group:
    name = name.strip() if isinstance(name, str) else name
    if not isinstance(name, str) or not _NAME.match(name):
        raise PublishingError(
            f"Group name {name!r} is not valid; use up to 100 letters, digits, spaces, `.`, `_`, `@` or `-`, "
            "starting with a letter or digit."
        )
    if session.scalar(select(Group.id).where(Group.name == name)) is not None:
        raise Conflict(f"Group `{name}` already exists; `packyard group list` shows every group.")
    group = Group(guid=str(uuid.uuid4()), name=name)
    session.add(group)
    session.flush()
    record(session, "group-create", detail=name)
    return group


def get(session: Session, name_or_guid: str) -> Group:
    """A group by its name or its guid (the API names groups by guid, the CLI and pages by name)."""
    group = session.scalar(select(Group).where((Group.name == name_or_guid) | (Group.guid == name_or_guid)))
    if group is None:
        raise NotFound(f"There is no group `{name_or_guid}`; `packyard group list` shows every group.")
    return group


def delete(session: Session, group: Group) -> None:
    session.delete(group)
    record(session, "group-delete", detail=group.name)


def find(session: Session, prefix: str = "", offset: int = 0, limit: int | None = None) -> tuple[list[Group], int]:
    """Groups whose name starts with `prefix` (any case), by name, and how many there are in all."""
    query = select(Group)
    if prefix:
        query = query.where(func.lower(Group.name).startswith(prefix.lower(), autoescape=True))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by(Group.name).offset(offset)
    if limit is not None:
        page = page.limit(limit)
    return list(session.scalars(page)), total


def member_counts(session: Session) -> dict[int, int]:
    """How many members each group has, by group id (a group with none is missing)."""
    query = select(GroupMember.group_id, func.count()).group_by(GroupMember.group_id)
    return {group_id: count for group_id, count in session.execute(query)}


def members(session: Session, group: Group) -> list[User]:
    query = select(User).join(GroupMember, GroupMember.user_id == User.id).where(GroupMember.group_id == group.id)
    return list(session.scalars(query.order_by(User.username)))


def add_member(session: Session, group: Group, user: User) -> bool:
    """Add the user; False when they were a member already."""
    if session.get(GroupMember, (group.id, user.id)) is not None:
        return False
    session.add(GroupMember(group_id=group.id, user_id=user.id))
    session.flush()
    record(session, "group-member-add", detail=f"{group.name} {user.username}")
    return True


def remove_member(session: Session, group: Group, user: User) -> None:
    row = session.get(GroupMember, (group.id, user.id))
    if row is None:
        raise NotFound(f"User `{user.username}` is not a member of group `{group.name}`.")
    session.delete(row)
    record(session, "group-member-remove", detail=f"{group.name} {user.username}")


def group_json(group: Group) -> dict[str, Any]:
    """Connect's group object."""
    return {"guid": group.guid, "name": group.name, "owner_guid": None, "temp_ticket": None}
