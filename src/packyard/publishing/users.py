"""Users, their roles, and API keys sent as `Authorization: Key <key>` (Connect's scheme)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from packyard.changelog.events import record
from packyard.db import Database, utcnow
from packyard.publishing.errors import Conflict, Forbidden, InvalidKey, NotFound, PublishingError
from packyard.publishing.models import ROLES, ApiKey, Group, GroupMember, User

# Seconds a verified key is trusted without a database read; role, lock and key changes in the change log end
# the trust at once (`AppContext.sync`), so this bounds only writes that bypass the log.
CALLER_TTL = 30.0
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Caller:
    """Who a request is from: enough to authorize without touching the database again."""

    user_id: int
    guid: str
    username: str
    role: str
    groups: tuple[str, ...] = ()  # the names of the user's groups, for the app's RStudio-Connect-Credentials

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_publish(self) -> bool:
        return self.role in ("admin", "publisher")


@dataclass(frozen=True)
class UserSummary:
    """A user as the lists show them: never a password hash or a key."""

    username: str
    guid: str
    role: str
    email: str
    locked: bool
    keys: int
    created_at: datetime


# Connect names the admin role `administrator`; Packyard's CLI and config say `admin`.
CONNECT_ROLES = {"admin": "administrator", "publisher": "publisher", "viewer": "viewer"}


def user_json(user: User) -> dict[str, Any]:
    """Connect's user object: what rsconnect and posit-sdk read."""
    created = user.created_at.isoformat().replace("+00:00", "Z")
    return {
        "guid": user.guid,
        "username": user.username,
        "email": user.email,
        "first_name": "",
        "last_name": "",
        "user_role": CONNECT_ROLES.get(user.role, user.role),
        "created_time": created,
        "updated_time": created,
        "active_time": None,
        "confirmed": True,
        "locked": user.locked,
    }


def find_users(
    session: Session, prefix: str = "", roles: list[str] | None = None, offset: int = 0, limit: int | None = None
) -> tuple[list[User], int]:
    """Users whose name or email starts with `prefix` (any case), by name, and how many there are in all."""
    query = select(User)
    if prefix:
        needle = prefix.lower()
        query = query.where(
            func.lower(User.username).startswith(needle, autoescape=True)
            | func.lower(User.email).startswith(needle, autoescape=True)
        )
    if roles:
        query = query.where(User.role.in_(roles))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by(User.username).offset(offset)
    if limit is not None:
        page = page.limit(limit)
    return list(session.scalars(page)), total


def get_user_by_guid(session: Session, guid: str) -> User:
    user = session.scalar(select(User).where(User.guid == guid))
    if user is None:
        raise NotFound(f"There is no user with guid `{guid}`; `GET /__api__/v1/users?prefix=` finds one.")
    return user


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_user(session: Session, username: str, role: str, email: str = "") -> User:
    if not _USERNAME.match(username):
        raise PublishingError(
            f"User name {username!r} is not valid; use up to 64 letters, digits, `.`, `_` or `-`, "
            "starting with a letter or digit."
        )
    if role not in ROLES:
        raise PublishingError(f"Role {role!r} is not known; use one of {', '.join(ROLES)}.")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"User `{username}` already exists; pick another name (`packyard user list` shows every user).")
    user = User(guid=str(uuid.uuid4()), username=username, role=role, email=email)
    session.add(user)
    session.flush()
    record(session, "user-create", detail=f"{username} {role}")
    return user


def list_users(session: Session) -> list[UserSummary]:
    keys = dict(session.execute(select(ApiKey.user_id, func.count()).group_by(ApiKey.user_id)).all())
    return [
        UserSummary(u.username, u.guid, u.role, u.email, u.locked, keys.get(u.id, 0), u.created_at)
        for u in session.scalars(select(User).order_by(User.username))
    ]


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"There is no user `{username}`; `packyard user create {username} --role publisher` adds one.")
    return user


def set_role(session: Session, username: str, role: str) -> User:
    if role not in ROLES:
        raise PublishingError(f"Role {role!r} is not known; use one of {', '.join(ROLES)}.")
    user = get_user(session, username)
    if user.role != role:
        user.role = role
        record(session, "user-role", detail=f"{username} {role}")
    return user


def create_key(session: Session, username: str, name: str = "") -> tuple[ApiKey, str]:
    """A new key for the user; the key itself is returned once and never stored."""
    user = get_user(session, username)
    key = secrets.token_urlsafe(24)
    row = ApiKey(user_id=user.id, name=name.strip(), key_hash=hash_key(key), prefix=key[:6])
    session.add(row)
    session.flush()
    record(session, "key-create", detail=f"{row.id} {username} {row.name}".strip())
    return row, key


def list_keys(session: Session, username: str | None = None) -> list[tuple[ApiKey, str]]:
    """Keys, oldest first, with their user's name; only `username`'s when given."""
    query = select(ApiKey, User.username).join(User, User.id == ApiKey.user_id).order_by(ApiKey.id)
    if username:
        query = query.where(User.username == username)
    return [(key, name) for key, name in session.execute(query)]


def revoke_key(session: Session, key_id: int, username: str | None = None) -> ApiKey:
    """Revoke a key; with `username`, only one of that user's (a user revoking their own from their keys page)."""
    row = session.get(ApiKey, key_id)
    owner = session.get(User, row.user_id) if row is not None else None
    if username is not None and (owner is None or owner.username != username):
        # One answer whether the key is someone else's or does not exist: other users' key ids are not theirs to know.
        raise NotFound(f"User `{username}` has no API key with id {key_id}; their keys page lists the ones they have.")
    if row is None:
        raise NotFound(f"There is no API key with id {key_id}; `packyard key list` shows them.")
    session.delete(row)
    # The row is gone after this, so the change log keeps whose key it was and its name.
    record(session, "key-revoke", detail=f"{key_id} {owner.username if owner else '?'} {row.name}".strip())
    return row


def caller_for(session: Session, key: str) -> Caller:
    """The user a key belongs to; InvalidKey for unknown keys and locked users."""
    row = session.execute(
        select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.key_hash == hash_key(key))
    ).first()
    if row is None:
        raise InvalidKey("Invalid API key; create one with `packyard key create --user NAME`.")
    api_key, user = row
    if user.locked:
        raise InvalidKey(f"User `{user.username}` is locked; an administrator can unlock the account.")
    api_key.last_used_at = utcnow()
    return caller_of(session, user)


def caller_of(session: Session, user: User) -> Caller:
    names = select(Group.name).join(GroupMember, GroupMember.group_id == Group.id).where(GroupMember.user_id == user.id)
    return Caller(user.id, user.guid, user.username, user.role, tuple(session.scalars(names.order_by(Group.name))))


def key_from_headers(headers: dict[str, str]) -> str | None:
    """The key of `Authorization: Key <key>`, or of `X-RSC-Authorization` (Connect accepts both)."""
    value = headers.get("authorization", "")
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "key" and rest.strip():
        return rest.strip()
    other = headers.get("x-rsc-authorization", "").strip()
    if other:
        return other.removeprefix("Key ").strip()
    return None


def require_publisher(caller: Caller) -> None:
    if not caller.can_publish:
        raise Forbidden(
            f"User `{caller.username}` has role `{caller.role}`, which cannot publish; "
            f"an administrator can run `packyard user set-role {caller.username} publisher`."
        )


class Callers:
    """Verified keys for a few seconds, so the proxy and task polling do not read the database per request."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[Caller, float]] = {}

    def lookup(self, key: str) -> Caller:
        hit = self._cache.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        with self.db.session() as session:
            caller = caller_for(session, key)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (caller, time.monotonic() + CALLER_TTL)
        return caller

    def forget_all(self) -> None:
        """A role, lock or key changed (the change log says so): verify every key again on its next use."""
        self._cache.clear()

    async def optional(self, headers: dict[str, str]) -> Caller | None:
        key = key_from_headers(headers)
        if key is None:
            return None
        hit = self._cache.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return await asyncio.to_thread(self.lookup, key)

    async def required(self, headers: dict[str, str]) -> Caller:
        caller = await self.optional(headers)
        if caller is None:
            raise InvalidKey(
                "Send an API key as `Authorization: Key <key>`; `packyard key create --user NAME` makes one."
            )
        return caller
