"""Tokens: claims, scopes, expiry parsing and revocation, against a real SQLite database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from packyard.auth import tokens
from packyard.auth.credentials import token_from_header
from packyard.auth.errors import InvalidToken, ScopeNotGranted
from packyard.changelog.prepare import prepare
from packyard.db import Database
from packyard.errors import PackyardError

SECRET = "s" * 48


@pytest.fixture
def db(tmp_path: Path) -> Database:
    """A database with the default sources and repositories (`local-python-src`, `pypi`) that tokens name."""
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    prepare(database)
    return database


def test_token_claims(db: Database) -> None:
    with db.session() as session:
        token, row = tokens.create_token(
            session,
            SECRET,
            "http://localhost:4242",
            "ci",
            ["sources:write"],
            ["local-python-src"],
            expires=timedelta(days=30),
        )
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="packyard")
    assert {"aud", "exp", "jti", "iat", "iss", "scopes"} <= claims.keys()
    assert claims["iss"] == "http://localhost:4242/"
    assert claims["jti"] == row.jti
    assert claims["exp"] - claims["iat"] == 30 * 86400
    assert claims["scopes"] == {"sources:write": ["local-python-src"]}


def test_grants(db: Database) -> None:
    with db.session() as session:
        token, _ = tokens.create_token(session, SECRET, "http://x", "reader", ["repos:read"], repos=["pypi"])
        admin, _ = tokens.create_token(session, SECRET, "http://x", "admin", ["admin"])
    grant = tokens.decode(token, SECRET)
    grant.require("repos:read", "repo", "pypi")
    with pytest.raises(ScopeNotGranted, match="does not grant `repos:read` on repo `private`"):
        grant.require("repos:read", "repo", "private")
    with pytest.raises(ScopeNotGranted, match="`sources:write`"):
        grant.require("sources:write", "source", "local-python-src")
    tokens.decode(admin, SECRET).require("sources:write", "source", "anything")


def test_revocation(db: Database) -> None:
    with db.session() as session:
        token, row = tokens.create_token(session, SECRET, "http://x", "gone", ["admin"])
    grant = tokens.decode(token, SECRET)
    with db.session() as session:
        tokens.check_not_revoked(session, grant)
        tokens.revoke_token(session, row.jti)
    with db.session() as session, pytest.raises(InvalidToken, match="was revoked"):
        tokens.check_not_revoked(session, grant)


def test_bad_and_expired_tokens(db: Database) -> None:
    with pytest.raises(InvalidToken, match="not valid for this server"):
        tokens.decode("not-a-jwt", SECRET)
    with db.session() as session:
        token, _ = tokens.create_token(session, SECRET, "http://x", "t", ["admin"])
    with pytest.raises(InvalidToken, match="not valid for this server"):
        tokens.decode(token, "another-secret-of-sufficient-length-000000")
    expired = jwt.encode({"aud": "packyard", "iat": 1, "exp": 2, "jti": "x"}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match="has expired"):
        tokens.decode(expired, SECRET)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"scopes": ["root"]}, "Scope 'root' is not known"),
        ({"scopes": []}, "at least one scope"),
        ({"scopes": ["sources:write"]}, "needs the sources"),
        ({"scopes": ["repos:read"]}, "needs the repositories"),
        ({"scopes": ["admin"], "description": " "}, "needs a description"),
    ],
)
def test_create_rejects(db: Database, args: dict, message: str) -> None:
    kwargs = {"description": "d", **args}
    with db.session() as session, pytest.raises(PackyardError, match=message.replace("(", r"\(")):
        tokens.create_token(session, SECRET, "http://x", kwargs.pop("description"), kwargs.pop("scopes"))


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("45m", timedelta(minutes=45)),
        ("90s", timedelta(seconds=90)),
        ("never", None),
    ],
)
def test_parse_expires(text: str, delta: timedelta | None) -> None:
    assert tokens.parse_expires(text) == delta


def test_expiry_date_is_the_end_of_that_day() -> None:
    today = date(2030, 5, 1)
    assert tokens.parse_expiry_date("2030-05-01", today) == datetime(2030, 5, 2, tzinfo=UTC)
    assert tokens.parse_expiry_date(" ", today) is None
    with pytest.raises(PackyardError, match=r"2030-04-30 is in the past; pick today \(2030-05-01\)"):
        tokens.parse_expiry_date("2030-04-30", today)
    with pytest.raises(PackyardError, match="'30 days' is not a date"):
        tokens.parse_expiry_date("30 days", today)


@pytest.mark.parametrize("text", ["30", "0d", "1w", "soon"])
def test_parse_expires_rejects(text: str) -> None:
    with pytest.raises(PackyardError, match="is not valid"):
        tokens.parse_expires(text)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Basic X190b2tlbl9fOmFiYw==", "abc"),  # __token__:abc
        ("Basic X190b2tlbl9fOg==", None),  # empty password counts as no credentials
        ("Bearer abc", "abc"),
        ("token abc", "abc"),
        ("Basic !!!", None),
        ("Digest abc", None),
        (None, None),
    ],
)
def test_token_from_header(header: str | None, token: str | None) -> None:
    assert token_from_header(header) == token
