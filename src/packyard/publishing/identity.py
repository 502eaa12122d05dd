"""People from the company's OpenID provider: the user an identity token names, made at its first sign-in, with
the role its groups map to and the provider's groups as Packyard groups, both set again at every sign-in."""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.changelog.events import record
from packyard.config import OidcSettings
from packyard.publishing import groups as group_store
from packyard.publishing.errors import Conflict, Forbidden, PublishingError
from packyard.publishing.models import Group, GroupMember, User
from packyard.publishing.users import create_user, set_role

log = logging.getLogger(__name__)
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def claimed_groups(oidc: OidcSettings, claims: dict[str, Any]) -> list[str]:
    """The groups claim as a list of names: providers send a JSON list, or one string of names."""
    value = claims.get(oidc.groups_claim) or []
    names = re.split(r"[,\s]+", value) if isinstance(value, str) else [str(v) for v in value]
    return sorted({name.strip() for name in names if name.strip()})


def role_for(oidc: OidcSettings, groups: list[str]) -> str:
    if set(groups) & set(oidc.admin_groups):
        return "admin"
    if set(groups) & set(oidc.publisher_groups):
        return "publisher"
    return oidc.default_role


def user_from_claims(session: Session, oidc: OidcSettings, claims: dict[str, Any]) -> User:
    """The user of a verified identity token: found by issuer and subject, else created; role, e-mail and
    provider groups set from the token. A locked user is refused."""
    subject = f"{oidc.issuer.rstrip('/')} {claims.get('sub')}"
    name = claims.get(oidc.username_claim)
    if not isinstance(name, str) or not _USERNAME.match(name):
        raise PublishingError(
            f"The provider's `{oidc.username_claim}` claim is {name!r}, which is not a Packyard user name (up to 64 "
            "letters, digits, `.`, `_` or `-`); set `[oidc] username_claim` to a claim that is."
        )
    groups = claimed_groups(oidc, claims)
    role = role_for(oidc, groups)
    email = claims.get(oidc.email_claim)
    user = session.scalar(select(User).where(User.oidc_subject == subject))
    if user is None:
        if session.scalar(select(User.id).where(User.username == name)) is not None:
            raise Conflict(
                f"A local user `{name}` already exists, so `{name}` from the provider cannot sign in as them; an "
                f"administrator can rename or remove the local user, or set `[oidc] username_claim` to another claim."
            )
        user = create_user(session, name, role, email if isinstance(email, str) else "")
        user.oidc_subject = subject
        record(session, "user-oidc", detail=f"{name} {role}")
    else:
        if user.locked:
            raise Forbidden(f"User `{user.username}` is locked; an administrator can unlock the account.")
        if user.role != role:
            set_role(session, user.username, role)
        if isinstance(email, str):
            user.email = email
    follow_groups(session, user, groups)
    return user


def follow_groups(session: Session, user: User, names: list[str]) -> None:
    """Make the user a member of exactly `names` among provider groups (creating those missing); memberships of
    groups an administrator keeps (`origin` local) are left alone."""
    wanted: dict[str, Group] = {}
    for name in names:
        group = session.scalar(select(Group).where(Group.name == name))
        if group is None:
            if not group_store.valid_name(name):
                log.warning("Provider group %r is not a valid Packyard group name; %s is not put in it.", name,
                            user.username)  # fmt: skip
                continue
            group = group_store.create(session, name)
            group.origin = "oidc"
        wanted[name] = group
    current = session.execute(
        select(Group).join(GroupMember, GroupMember.group_id == Group.id).where(GroupMember.user_id == user.id)
    ).scalars()
    for group in list(current):
        if group.name not in wanted and group.origin == "oidc":
            group_store.remove_member(session, group, user)
    for group in wanted.values():
        group_store.add_member(session, group, user)
