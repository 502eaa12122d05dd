"""An identity token of a person (from the sign-in provider, `[oidc]`) exchanged for a token that reads the
authenticated repositories their groups may read: what posit-keyring stores in `~/.ppm/tokens.toml` and hands
to pip and uv.

Which repositories: every authenticated repository whose reader groups (`packyard repo edit --groups`) include
one of the user's groups, as they are after this sign-in (the provider's groups, plus any local group an
administrator put them in). An administrator (by `[oidc] admin_groups`) reads every repository: they may make
any token on the admin pages anyway, and withholding it here would only send them there. The token never
carries `sources:write` or `admin`; uploads take a token made for them.

No replay check, unlike a CI token's: the ID token reaches only the client that started the device flow (PKCE) or
the file it was given, and exchanging it again gives the same person the same reading."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth import tokens
from packyard.auth.errors import ExchangeError
from packyard.publishing.errors import PublishingError
from packyard.publishing.identity import user_from_claims
from packyard.publishing.models import Group, GroupMember, User
from packyard.repository.models import Repository

if TYPE_CHECKING:
    from packyard.auth.exchange import Exchange


def reader_groups(repo: Repository) -> list[str]:
    """A repository's reader groups as stored: newline-separated names."""
    return [name for name in repo.reader_groups.split("\n") if name]


def groups_of(session: Session, user: User) -> list[str]:
    query = select(Group.name).join(GroupMember, GroupMember.group_id == Group.id).where(GroupMember.user_id == user.id)
    return sorted(session.scalars(query))


def readable(session: Session, groups: list[str]) -> list[str]:
    """The authenticated repositories whose reader groups include one of `groups`, by name."""
    wanted = set(groups)
    repos = session.scalars(select(Repository).where(Repository.authenticated).order_by(Repository.name))
    return [repo.name for repo in repos if wanted & set(reader_groups(repo))]


def exchange(server: Exchange, token: str) -> tuple[str, int]:
    """The new token and its lifetime in seconds, for a verified ID token of someone whose groups read something;
    ExchangeError (403) naming their groups and the command that lets them read otherwise."""
    oidc = server.settings.oidc
    claims = server.issuers.get(oidc.issuer).verify(token, audience=oidc.client_id)
    signed, refusal = "", ""
    with server.db.session() as session:  # the user and their groups are kept even when refused: who tried shows
        try:
            user = user_from_claims(session, oidc, claims)
        except PublishingError as exc:  # a locked user, a name clash: refused, with the publishing domain's reason
            raise ExchangeError("invalid_grant", exc.message, status_code=exc.status_code) from exc
        groups = groups_of(session, user)
        repos = [tokens.ANY] if user.role == "admin" else readable(session, groups)
        if repos:
            signed, _ = tokens.create_token(
                session,
                server.secret,
                server.settings.server.address,
                f"{user.username} (single sign-on)",
                ["repos:read"],
                repos=repos,
                expires=timedelta(seconds=oidc.token_lifetime),
                person=user.username,
            )
        else:
            refusal = _reads_nothing(session, user.username, groups)
    if refusal:
        raise ExchangeError("access_denied", refusal, status_code=403)
    return signed, oidc.token_lifetime


def _reads_nothing(session: Session, username: str, groups: list[str]) -> str:
    """Why a signed-in person gets no token, and the command an administrator runs to change that."""
    query = select(Repository.name).where(Repository.authenticated).order_by(Repository.name)
    authenticated = list(session.scalars(query))
    named = ", ".join(f"`{g}`" for g in groups) if groups else "none"
    example = authenticated[0] if authenticated else "REPO"
    command = f"packyard repo edit --name {example} --groups {groups[0] if groups else 'GROUP'}"
    if not authenticated:
        return (
            f"User `{username}` signed in, but this server has no authenticated repository, so there is nothing a "
            "token would read; public repositories need no token."
        )
    return (
        f"User `{username}` (groups: {named}) may read no authenticated repository: none lists these groups as "
        f"readers. An administrator can let a group read one with `{command}`."
    )
