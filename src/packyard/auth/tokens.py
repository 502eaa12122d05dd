"""Scoped, expiring API tokens: HS256 JWTs whose `jti` the server keeps, so it can list and revoke them."""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard import formatting
from packyard.auth.errors import InvalidToken, ScopeNotGranted
from packyard.auth.models import Token
from packyard.changelog.events import record
from packyard.db import utcnow
from packyard.errors import PackyardError
from packyard.repository.models import Repository, Source

AUDIENCE = "packyard"
SCOPES = ("sources:write", "repos:read", "admin")
ANY = "*"
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_expires(text: str) -> timedelta | None:
    """`30d`, `12h`, `45m`, `90s` or `never`."""
    if text.strip().lower() == "never":
        return None
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise PackyardError(f"Expiry {text!r} is not valid; write e.g. `30d`, `12h`, `45m`, `90s` or `never`.")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_expiry_date(text: str, today: date | None = None) -> datetime | None:
    """A last day of validity (`YYYY-MM-DD`, UTC) as the moment the token expires: the end of that day.
    Empty means never."""
    if not text.strip():
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError as exc:
        raise PackyardError(f"Expiry {text!r} is not a date; write it as YYYY-MM-DD, e.g. 2030-01-31.") from exc
    today = today or utcnow().date()
    if day < today:
        raise PackyardError(
            f"Expiry {text.strip()} is in the past; pick today ({today}) or a later day, or none for a token "
            "that never expires."
        )
    return datetime.combine(day + timedelta(days=1), time(), UTC)


def token_state(row: Token, now: datetime | None = None) -> str:
    """`active`, `expired` or `revoked`."""
    now = now or utcnow()
    if row.revoked_at:
        return "revoked"
    return "expired" if row.expires_at and row.expires_at <= now else "active"


def names(text: str) -> list[str]:
    """A stored comma-separated list (`scopes`, `sources`, `repos`) as a list."""
    return [x for x in text.split(",") if x]


@dataclass(frozen=True)
class Grant:
    """What a verified token may do."""

    jti: str
    description: str
    scopes: dict[str, tuple[str, ...]]
    expires_at: float | None
    person: str = ""  # the user a token exchanged at single sign-on reads for (`person_tokens.py`)

    def _allows(self, scope: str, resource: str) -> bool:
        if ANY in self.scopes.get("admin", ()):
            return True
        names = self.scopes.get(scope, ())
        return ANY in names or resource in names

    def require(self, scope: str, kind: str, resource: str) -> None:
        if not self._allows(scope, resource) and self.person:
            raise ScopeNotGranted(
                f"User `{self.person}` signed in, but none of their groups reads {kind} `{resource}`; an administrator "
                f"can let one read it (`packyard repo edit --name {resource} --groups GROUP`), and the user then signs "
                "in again by removing this server's entry from `~/.ppm/tokens.toml`."
            )
        if not self._allows(scope, resource):
            raise ScopeNotGranted(
                f"Token `{self.description}` does not grant `{scope}` on {kind} `{resource}`; create one with "
                f"`{create_command(self.description, {scope: (resource,)})}`."
            )


def create_command(description: str, scopes: Mapping[str, Sequence[str]]) -> str:
    """The `packyard token create` command line for a token like this one, to suggest in a message."""
    args = ["packyard", "token", "create", "--description", description]
    for scope, resources in scopes.items():
        args += ["--scope", scope]
        if scope != "admin":
            args += ["--sources" if scope == "sources:write" else "--repos", ",".join(resources)]
    return shlex.join(args)


def _split(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def create_token(
    session: Session,
    secret: str,
    issuer: str,
    description: str,
    scopes: Iterable[str],
    sources: Iterable[str] = (),
    repos: Iterable[str] = (),
    expires: timedelta | datetime | None = None,
    person: str = "",
) -> tuple[str, Token]:
    """A signed token and its row; `expires` is a lifetime or the moment the token expires; `person` names the user
    a token made at single sign-on reads for."""
    scope_list = _split(scopes)
    source_list, repo_list = _split(sources), _split(repos)
    if not description.strip():
        raise PackyardError("A token needs a description saying who or what uses it (`--description`).")
    if not scope_list:
        raise PackyardError(f"A token needs at least one scope (`--scope`): {', '.join(SCOPES)}.")
    for scope in scope_list:
        if scope not in SCOPES:
            raise PackyardError(f"Scope {scope!r} is not known; use one of: {', '.join(SCOPES)}.")
    if isinstance(expires, datetime) and expires <= utcnow():
        raise PackyardError(f"Expiry {formatting.moment(expires)} is in the past; pick a later time.")
    if "sources:write" in scope_list and not source_list:
        raise PackyardError(
            "Scope `sources:write` needs the sources it may upload to (`--sources`: names, comma-separated, or '*')."
        )
    if "repos:read" in scope_list and not repo_list:
        raise PackyardError(
            "Scope `repos:read` needs the repositories it may read (`--repos`: names, comma-separated, or '*')."
        )
    if "sources:write" in scope_list:
        _check_names(session, "source", source_list)
    if "repos:read" in scope_list:
        _check_names(session, "repository", repo_list)
    grants: dict[str, list[str]] = {}
    for scope in scope_list:
        grants[scope] = {"sources:write": source_list, "repos:read": repo_list, "admin": [ANY]}[scope]
    now = utcnow()
    row = Token(
        jti=str(uuid.uuid4()),
        description=description.strip(),
        scopes=",".join(scope_list),
        sources=",".join(source_list),
        repos=",".join(repo_list),
        created_at=now,
        expires_at=now + expires if isinstance(expires, timedelta) else expires,
    )
    session.add(row)
    record(session, "token-create", detail=row.jti)
    claims: dict[str, object] = {
        "aud": AUDIENCE,
        "iss": issuer.rstrip("/") + "/",
        "iat": int(now.timestamp()),
        "jti": row.jti,
        "description": row.description,
        "scopes": grants,
    }
    if row.expires_at:
        claims["exp"] = int(row.expires_at.timestamp())
    if person:
        claims["person"] = person
    return jwt.encode(claims, secret, algorithm="HS256"), row


def _check_names(session: Session, kind: str, wanted: list[str]) -> None:
    """A token names sources and repositories that exist (or `*`): a typo would grant nothing, silently."""
    model = Source if kind == "source" else Repository
    known = list(session.scalars(select(model.name).order_by(model.name)))
    for name in wanted:
        if name != ANY and name not in known:
            plural = "sources" if kind == "source" else "repositories"
            listed = ", ".join(f"`{n}`" for n in known) or "none"
            raise PackyardError(
                f"{kind.capitalize()} `{name}` does not exist; the {plural} on this server are {listed} "
                f"(or use `*` for all of them)."
            )


def list_tokens(session: Session) -> list[Token]:
    return list(session.scalars(select(Token).order_by(Token.created_at)))


def revoke_token(session: Session, jti: str) -> Token:
    row = session.get(Token, jti)
    if row is None:
        raise PackyardError(f"No token with id `{jti}`; `packyard token list` shows the ids.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        record(session, "token-revoke", detail=jti)
    return row


def decode(token: str, secret: str) -> Grant:
    """Check signature, audience and expiry; the caller checks revocation against the database."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE, options={"require": ["jti", "iat"]})
    except jwt.ExpiredSignatureError as exc:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE, options={"verify_exp": False})
        raise InvalidToken(expired_message(str(claims.get("description", "")), claims.get("scopes") or {})) from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken(
            "The token is not valid for this server (bad signature or format); check that you copied the whole token."
        ) from exc
    scopes = claims.get("scopes") or {}
    return Grant(
        jti=str(claims["jti"]),
        description=str(claims.get("description", claims["jti"])),
        scopes={str(k): tuple(v) for k, v in scopes.items()},
        expires_at=claims.get("exp"),
        person=str(claims.get("person", "")),
    )


def expired_message(description: str, scopes: dict[str, Any]) -> str:
    """Says which token expired and the command that makes its successor."""
    if not (description and scopes):
        return "The token has expired; ask an administrator for a new one."
    again = create_command(description, scopes)
    return f"The token `{description}` has expired; ask an administrator for a new one (`{again} --expires 30d`)."


def check_not_revoked(session: Session, grant: Grant) -> None:
    row = session.get(Token, grant.jti)
    if row is None or row.revoked_at is not None:
        when = f" on {formatting.moment(row.revoked_at)}" if row and row.revoked_at else ""
        raise InvalidToken(f"The token `{grant.description}` was revoked{when}; ask an administrator for a new one.")


def is_expired(grant: Grant) -> bool:
    return grant.expires_at is not None and grant.expires_at <= datetime.now(UTC).timestamp()
