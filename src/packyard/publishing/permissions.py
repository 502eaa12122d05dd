"""Who may view and who may change a content: its owner, its permissions' users and groups, and the rules of
Connect's roles. A permission's role is `viewer` or `owner`; `owner` makes a collaborator, who deploys, changes
settings and variables and reads logs, and only a user whose role publishes can be one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from packyard.changelog.events import record
from packyard.publishing import groups, users
from packyard.publishing.errors import Conflict, NotFound, PublishingError
from packyard.publishing.models import Content, ContentPermission, Group, GroupMember, User
from packyard.publishing.users import Caller

VIEWER, OWNER = "viewer", "owner"
ROLES = (VIEWER, OWNER)
# The words the CLI and the pages take for a role: Connect's, and `collaborator`, which is what `owner` means.
ROLE_WORDS = {"viewer": VIEWER, "owner": OWNER, "collaborator": OWNER}
PRINCIPAL_TYPES = ("user", "group")
# Change-log kinds that alter who may view or change a content; every node drops what it cached of them.
EVENTS = frozenset(
    {"permission-add", "permission-change", "permission-remove", "group-delete", "group-member-add",
     "group-member-remove", "user-role", "user-lock", "content-access"}
)  # fmt: skip


@dataclass(frozen=True)
class Audience:
    """The users a content is shared with, groups expanded: enough to authorize a request without the database."""

    owner_id: int
    editors: frozenset[int] = frozenset()  # given `owner`, directly or through a group
    viewers: frozenset[int] = frozenset()  # given `viewer` only


def audience(session: Session, content: Content) -> Audience:
    who = func.coalesce(ContentPermission.user_id, GroupMember.user_id)
    query = (
        select(ContentPermission.role, who)
        .outerjoin(GroupMember, GroupMember.group_id == ContentPermission.group_id)
        .where(ContentPermission.content_id == content.id, who.is_not(None))
    )
    editors: set[int] = set()
    viewers: set[int] = set()
    for role, user_id in session.execute(query):
        (editors if role == OWNER else viewers).add(user_id)
    return Audience(content.owner_id, frozenset(editors), frozenset(viewers - editors))


def can_view(caller: Caller | None, content: Content, audience: Audience) -> bool:
    if content.access_type == "all":
        return True
    if caller is None:
        return False
    if content.access_type == "logged_in" or caller.is_admin:
        return True
    user = caller.user_id
    return user == audience.owner_id or user in audience.editors or user in audience.viewers


def can_change(caller: Caller, content: Content, audience: Audience) -> bool:
    """Its owner, a collaborator whose role publishes, or an administrator (whether the role publishes *now* and
    the lock are `content.check_write`'s to check)."""
    if caller.is_admin or caller.user_id == audience.owner_id:
        return True
    return caller.can_publish and caller.user_id in audience.editors


def app_role(caller: Caller | None, content: Content, audience: Audience) -> str:
    """Connect's `app_role`: `owner`, `editor` (a collaborator, or an administrator), `viewer` or `none`."""
    if caller is not None and caller.user_id == audience.owner_id:
        return "owner"
    if caller is not None and can_change(caller, content, audience):
        return "editor"
    return "viewer" if can_view(caller, content, audience) else "none"


def shared_with(caller: Caller) -> Any:
    """A condition on Content: shared with the caller, directly or through one of their groups."""
    groups = select(GroupMember.group_id).where(GroupMember.user_id == caller.user_id)
    direct = select(ContentPermission.content_id).where(
        (ContentPermission.user_id == caller.user_id) | ContentPermission.group_id.in_(groups)
    )
    return Content.id.in_(direct)


# -- the permissions API -------------------------------------------------------------------------------------------


def listing(session: Session, content: Content) -> list[dict[str, Any]]:
    query = (
        select(ContentPermission, User.guid, Group.guid)
        .outerjoin(User, User.id == ContentPermission.user_id)
        .outerjoin(Group, Group.id == ContentPermission.group_id)
        .where(ContentPermission.content_id == content.id)
        .order_by(ContentPermission.id)
    )
    return [permission_json(p, content, user or group or "") for p, user, group in session.execute(query)]


def get(session: Session, content: Content, permission_id: str) -> ContentPermission:
    row = session.get(ContentPermission, int(permission_id)) if permission_id.isdigit() else None
    if row is None or row.content_id != content.id:
        raise NotFound(
            f"Content `{content.guid}` has no permission {permission_id!r}; "
            f"`GET /__api__/v1/content/{content.guid}/permissions` lists them."
        )
    return row


def add(session: Session, content: Content, body: Any) -> dict[str, Any]:
    kind, principal, role = _parse(session, body)
    _check(content, principal, role)
    existing = find(session, content, principal)
    if existing is not None:
        raise Conflict(
            f"{_name(principal)} already has role `{existing.role}` on content `{content.guid}`; change it with "
            f"`PUT /__api__/v1/content/{content.guid}/permissions/{existing.id}`."
        )
    return permission_json(_insert(session, content, principal, role), content, principal.guid)


def change(session: Session, content: Content, permission_id: str, body: Any) -> dict[str, Any]:
    row = get(session, content, permission_id)
    kind, principal, role = _parse(session, body)
    if (row.user_id if kind == "user" else row.group_id) != principal.id:
        raise PublishingError(
            f"Permission {row.id} is not for {_name(principal)}; a change may set its `role` only "
            "(remove it and add another to share with someone else)."
        )
    set_role(session, content, row, role)
    return permission_json(row, content, principal.guid)


def set_role(session: Session, content: Content, row: ContentPermission, role: str) -> None:
    """Give an existing permission another role, under the same rules as a new one."""
    principal = principal_of(session, row)
    _check(content, principal, role)
    if row.role != role:
        row.role = role
        record(session, "permission-change", detail=f"{content.guid} {label(principal)} {role}")


def remove(session: Session, content: Content, permission_id: str) -> None:
    _delete(session, content, get(session, content, permission_id))


# -- by name, for the CLI and the pages ------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """One permission of a content, with its principal's name."""

    id: int
    kind: str  # "user" or "group"
    name: str
    role: str  # VIEWER or OWNER


def shares(session: Session, content: Content) -> list[Share]:
    """Who the content is shared with: users, then groups, each by name."""
    query = (
        select(ContentPermission.id, User.username, Group.name, ContentPermission.role)
        .outerjoin(User, User.id == ContentPermission.user_id)
        .outerjoin(Group, Group.id == ContentPermission.group_id)
        .where(ContentPermission.content_id == content.id)
    )
    found = [
        Share(id_, "user" if user is not None else "group", user or group or "?", role)
        for id_, user, group, role in session.execute(query)
    ]
    return sorted(found, key=lambda s: (s.kind != "user", s.name.lower()))


def role_named(word: str) -> str:
    """The role a word names: `viewer`, or `owner` (also spelled `collaborator`)."""
    role = ROLE_WORDS.get(word.strip().lower()) if isinstance(word, str) else None
    if role is None:
        raise PublishingError(f"Role {word!r} is not known; use `viewer`, or `owner` for a collaborator.")
    return role


def principal_named(session: Session, name: str, kind: str | None = None) -> User | Group:
    """A user or a group by its name. Without `kind` both are looked for, and a name can say which it is with a
    `user:` or `group:` prefix (needed only when a user and a group share the name)."""
    name = name.strip()
    if kind is None:
        prefix, colon, rest = name.partition(":")
        if colon and prefix in PRINCIPAL_TYPES:
            return principal_named(session, rest, prefix)
        user = session.scalar(select(User).where(User.username == name))
        group = session.scalar(select(Group).where(Group.name == name))
        if user is not None and group is not None:
            raise PublishingError(f"`{name}` is both a user and a group; write `user:{name}` or `group:{name}`.")
        if user is None and group is None:
            raise NotFound(
                f"There is no user or group named `{name}`; give a name exactly as it is spelled on this server "
                "(an administrator can add users and groups)."
            )
        return user or group  # type: ignore[return-value]
    if kind == "user":
        return users.get_user(session, name)
    if kind == "group":
        return groups.get(session, name)
    raise PublishingError(f"Principal type {kind!r} is not known; use `user` or `group`.")


def find(session: Session, content: Content, principal: User | Group) -> ContentPermission | None:
    """The principal's own permission on the content (not one they have through a group)."""
    column = ContentPermission.user_id if isinstance(principal, User) else ContentPermission.group_id
    return session.scalar(
        select(ContentPermission).where(ContentPermission.content_id == content.id, column == principal.id)
    )


def grant(session: Session, content: Content, principal: User | Group, role: str) -> tuple[ContentPermission, str]:
    """Share the content with the principal as `role`, or change the role they have; with what happened:
    `added`, `changed`, or `kept` when they had that role already."""
    _check(content, principal, role)
    row = find(session, content, principal)
    if row is None:
        return _insert(session, content, principal, role), "added"
    if row.role == role:
        return row, "kept"
    set_role(session, content, row, role)
    return row, "changed"


def revoke(session: Session, content: Content, principal: User | Group) -> ContentPermission:
    """Stop sharing the content with the principal; NotFound when it was not shared with them."""
    row = find(session, content, principal)
    if row is None:
        raise NotFound(
            f"Content `{content.guid}` is not shared with {_name(principal, capital=False)}; "
            f"`packyard content access {content.guid}` shows who it is shared with."
        )
    _delete(session, content, row)
    return row


def _insert(session: Session, content: Content, principal: User | Group, role: str) -> ContentPermission:
    row = ContentPermission(content_id=content.id, role=role)
    if isinstance(principal, User):
        row.user_id = principal.id
    else:
        row.group_id = principal.id
    session.add(row)
    session.flush()
    record(session, "permission-add", detail=f"{content.guid} {label(principal)} {role}")
    return row


def _delete(session: Session, content: Content, row: ContentPermission) -> None:
    principal = principal_of(session, row)
    session.delete(row)
    record(session, "permission-remove", detail=f"{content.guid} {label(principal)} {row.role}")


def principal_of(session: Session, row: ContentPermission) -> User | Group:
    principal = session.get(User, row.user_id) if row.user_id is not None else session.get(Group, row.group_id)
    assert principal is not None, f"permission {row.id} names no user or group"  # foreign keys, on delete cascade
    return principal


def permission_json(row: ContentPermission, content: Content, principal_guid: str) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "content_guid": content.guid,
        "principal_guid": principal_guid,
        "principal_type": "user" if row.user_id is not None else "group",
        "role": row.role,
    }


def _parse(session: Session, body: Any) -> tuple[str, User | Group, str]:
    if not isinstance(body, dict):
        raise PublishingError(
            'Send a JSON object, e.g. {"principal_guid": "<user guid>", "principal_type": "user", "role": "viewer"}.'
        )
    kind, guid, role = body.get("principal_type"), body.get("principal_guid"), body.get("role")
    if kind not in PRINCIPAL_TYPES:
        raise PublishingError(f"`principal_type` is {kind!r}; use `user` or `group`.")
    if role not in ROLES:
        raise PublishingError(f"`role` is {role!r}; use `viewer`, or `owner` for a collaborator.")
    if not isinstance(guid, str) or not guid:
        raise PublishingError(f"`principal_guid` is {guid!r}; send the guid of a {kind} (`GET /__api__/v1/{kind}s`).")
    principal: User | Group | None
    if kind == "user":
        principal = session.scalar(select(User).where(User.guid == guid))
    else:
        principal = session.scalar(select(Group).where(Group.guid == guid))
    if principal is None:
        raise NotFound(f"There is no {kind} with guid `{guid}`; `GET /__api__/v1/{kind}s?prefix=` finds one.")
    return kind, principal, role


def _check(content: Content, principal: User | Group, role: str) -> None:
    if isinstance(principal, User):
        if principal.id == content.owner_id:
            raise Conflict(f"User `{principal.username}` owns content `{content.guid}`; an owner needs no permission.")
        if role == OWNER and principal.role not in ("admin", "publisher"):
            raise PublishingError(
                f"User `{principal.username}` has role `{principal.role}`, which cannot be a collaborator; share it "
                f"as `viewer`, or an administrator can run `packyard user set-role {principal.username} publisher` "
                "first."
            )


def _name(principal: User | Group, capital: bool = True) -> str:
    kind = "User" if isinstance(principal, User) else "Group"
    name = principal.username if isinstance(principal, User) else principal.name
    return f"{kind if capital else kind.lower()} `{name}`"


def label(principal: User | Group) -> str:
    """`user:NAME` or `group:NAME`, as the change log's events and the pages' notices name a principal."""
    return f"user:{principal.username}" if isinstance(principal, User) else f"group:{principal.name}"
