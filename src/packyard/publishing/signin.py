"""Passwords (argon2id) and signed-in browser sessions: what the web pages' sign-in rests on."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from packyard.changelog.events import record
from packyard.db import utcnow
from packyard.publishing import signin_throttle
from packyard.publishing.errors import BadCredentials, Forbidden, PublishingError
from packyard.publishing.models import User, WebSession
from packyard.publishing.users import Caller, caller_of, get_user

MIN_PASSWORD = 8
# Every cookie Packyard sets starts with this: the content proxy keeps cookies of such names from apps both ways
# (proxy/headers.py), so a new cookie named this way is covered without a change there.
COOKIE_PREFIX = "packyard_"
SESSION_COOKIE = COOKIE_PREFIX + "session"
# The login form has no session yet; its CSRF token travels in this cookie and in the form (double submit).
CSRF_COOKIE = COOKIE_PREFIX + "csrf"
SEEN_EVERY = timedelta(minutes=1)  # `last_seen_at` is written at most this often per session
_hasher = PasswordHasher()  # argon2id with the library's current parameters (RFC 9106 low-memory)


@dataclass(frozen=True)
class SignedIn:
    """A live session: who it is, and the CSRF token its forms carry."""

    caller: Caller
    csrf_token: str
    expires_at: datetime


def set_password(session: Session, username: str, password: str) -> User:
    if len(password) < MIN_PASSWORD:
        raise PublishingError(f"The password has {len(password)} characters; use at least {MIN_PASSWORD}.")
    user = get_user(session, username)
    user.password_hash = _hasher.hash(password)
    # A new password ends every browser signed in with the old one, and any pause of sign-in for the name.
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    signin_throttle.clear_user(session, user.username)
    record(session, "user-password", detail=username)
    return user


def set_locked(session: Session, username: str, locked: bool) -> User:
    user = get_user(session, username)
    if user.locked != locked:
        user.locked = locked
        record(session, "user-lock" if locked else "user-unlock", detail=username)
    if not locked:
        signin_throttle.clear_user(session, user.username)
    if locked:
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    return user


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def check_password(session: Session, username: str, password: str) -> User:
    """The user these credentials name; BadCredentials otherwise, after the same argon2 work either way."""
    user = session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None or not user.password_hash:
        raise BadCredentials("The user name or password is not right; check both and sign in again.")
    if user.locked:
        raise Forbidden(f"User `{user.username}` is locked; an administrator can unlock the account.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User, lifetime: timedelta) -> str:
    """A new session for the user, for `lifetime`; returns the cookie's token, which is never stored."""
    now = utcnow()
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=_token_hash(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + lifetime,
            last_seen_at=now,
        )
    )
    session.flush()
    return token


def find_session(session: Session, token: str) -> SignedIn | None:
    """The live session of a cookie token; None when unknown, expired or its user is locked."""
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == _token_hash(token))
    ).first()
    if row is None:
        return None
    web, user = row
    now = utcnow()
    if web.expires_at <= now or user.locked:
        session.delete(web)
        return None
    if now - web.last_seen_at >= SEEN_EVERY:
        web.last_seen_at = now
    return SignedIn(caller_of(session, user), web.csrf_token, web.expires_at)


def end_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == _token_hash(token)))
