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
from packyard.publishing.errors import BadCredentials, BadTicket, Forbidden, PublishingError
from packyard.publishing.models import ContentTicket, User, WebSession
from packyard.publishing.users import Caller, caller_of, get_user

MIN_PASSWORD = 8
# Every cookie Packyard sets starts with this: the content proxy keeps cookies of such names from apps both ways
# (proxy/headers.py), so a new cookie named this way is covered without a change there.
COOKIE_PREFIX = "packyard_"
SESSION_COOKIE = COOKIE_PREFIX + "session"
# The content origin's own session (`[server] content_address`): set there, for that host only, from a ticket.
CONTENT_COOKIE = COOKIE_PREFIX + "content"
MAIN, CONTENT = "main", "content"  # `WebSession.origin`: Packyard's pages, or the content origin
# How long a ticket from the main origin to the content origin may wait to be redeemed: a redirect's time.
TICKET_LIFETIME = timedelta(seconds=60)
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


def start_session(session: Session, user: User, lifetime: timedelta, origin: str = MAIN) -> str:
    """A new session for the user, for `lifetime`, on the main origin or the content origin; returns the cookie's
    token, which is never stored."""
    assert origin in (MAIN, CONTENT), origin
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
            origin=origin,
        )
    )
    session.flush()
    return token


def find_session(session: Session, token: str, origin: str = MAIN) -> SignedIn | None:
    """The live session of a cookie token from `origin`'s cookie; None when unknown, of the other origin, expired
    or its user is locked. A content-origin session opens content and nothing else, so the pages never take one."""
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == _token_hash(token), WebSession.origin == origin)
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
    """Sign-out: the main session ends, and with it the user's content-origin sessions, in every browser (a
    content session does not record which main session its ticket came from)."""
    user_id = session.scalar(
        select(WebSession.user_id).where(WebSession.token_hash == _token_hash(token), WebSession.origin == MAIN)
    )
    if user_id is None:
        return
    session.execute(
        delete(WebSession).where(
            (WebSession.token_hash == _token_hash(token))
            | ((WebSession.user_id == user_id) & (WebSession.origin == CONTENT))
        )
    )


def issue_ticket(session: Session, user_id: int) -> str:
    """A single-use ticket for the content origin, valid for TICKET_LIFETIME; returns the token, never stored."""
    now = utcnow()
    session.execute(delete(ContentTicket).where(ContentTicket.expires_at < now))
    token = secrets.token_urlsafe(32)
    session.add(ContentTicket(token_hash=_token_hash(token), user_id=user_id, expires_at=now + TICKET_LIFETIME))
    session.flush()
    return token


def redeem_ticket(session: Session, token: str, lifetime: timedelta) -> str:
    """Use a ticket once: its row is deleted by this statement (of two redeemers, one deletes it, the other finds
    nothing), and a content-origin session starts for its user; returns that session's cookie token."""
    row = session.execute(
        delete(ContentTicket)
        .where(ContentTicket.token_hash == _token_hash(token))
        .returning(ContentTicket.user_id, ContentTicket.expires_at)
    ).first()
    if row is None:
        raise BadTicket(
            "This sign-in ticket is not known or was already used: a ticket opens the content origin once. "
            "Open the content's address again to get a new one."
        )
    user_id, expires_at = row
    if expires_at <= utcnow():
        raise BadTicket(
            f"This sign-in ticket expired: a ticket is valid for {int(TICKET_LIFETIME.total_seconds())} seconds. "
            "Open the content's address again to get a new one."
        )
    user = session.get(User, user_id)
    if user is None or user.locked:
        raise BadTicket("This sign-in ticket's user is locked or gone; an administrator can unlock the account.")
    return start_session(session, user, lifetime, CONTENT)
