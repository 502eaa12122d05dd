"""Failed web sign-ins, counted per user name and per client address, and the lockouts they earn.

The counts are rows of `sign_in_failures` in the database, not state of one process, so the nodes of a server
that share its database share the counts: guesses spread over the nodes are counted together. An attempt is
counted as failed before its password is checked, and forgiven when the password is right; guesses sent in
parallel therefore cannot all pass the check before the first failure is written.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from packyard.publishing.errors import TooManySignIns
from packyard.publishing.models import SignInFailure

USER_ALLOWANCE = 5  # failures for one user name; the 5th and each one after lock it for a while
ADDRESS_ALLOWANCE = 20  # failures from one address over any user names: an office may share one NAT address
FIRST_LOCKOUT = timedelta(seconds=30)  # doubled at each failure past the allowance
MAX_LOCKOUT = timedelta(minutes=15)
WINDOW = timedelta(minutes=15)  # a key with neither a failure nor a lockout for this long starts from zero
MAX_NAME = 200  # characters of a user name kept in a key (names are at most 64)


@dataclass(frozen=True)
class Attempt:
    """The rows one sign-in attempt is counted in."""

    user: str  # `user:<name>`
    address: str  # `address:<ip>`, or `address:<ipv6 /64>`


def attempt_of(username: str, address: str) -> Attempt:
    return Attempt(f"user:{username[:MAX_NAME]}", f"address:{_network(address)}")


def begin(session: Session, attempt: Attempt, now: datetime) -> None:
    """Count the attempt as failed, and lock its user name or address once past its allowance; TooManySignIns
    (and nothing counted) while either is locked out."""
    # The first statement writes: SQLite then takes its write lock before anything is read, so two attempts never
    # read the same count (a read first would make the second writer fail with "database is locked").
    session.execute(delete(SignInFailure).where(SignInFailure.last_failure_at < now - WINDOW - MAX_LOCKOUT))
    rows = {key: _row(session, key, now) for key in sorted((attempt.user, attempt.address))}  # one lock order
    user, address = rows[attempt.user], rows[attempt.address]
    for row in (user, address):
        if row.locked_until is not None and row.locked_until > now:
            raise _refusal(row, now)
    for row, allowance in ((user, USER_ALLOWANCE), (address, ADDRESS_ALLOWANCE)):
        if now - max(row.last_failure_at, row.locked_until or row.last_failure_at) > WINDOW:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        if row.failures >= allowance:
            row.locked_until = now + min(FIRST_LOCKOUT * 2 ** min(row.failures - allowance, 16), MAX_LOCKOUT)


def forgive(session: Session, attempt: Attempt) -> None:
    """The attempt's password was right: its user name starts again from zero, and its address is not charged."""
    session.execute(delete(SignInFailure).where(SignInFailure.key == attempt.user))
    address = session.get(SignInFailure, attempt.address, with_for_update=True)
    if address is not None:
        address.failures = max(address.failures - 1, 0)
        if address.failures < ADDRESS_ALLOWANCE:
            address.locked_until = None  # the lock this attempt's own count set, if any


def clear_user(session: Session, username: str) -> None:
    """Forget a user name's failures and lockout: an administrator set its password or unlocked it."""
    session.execute(delete(SignInFailure).where(SignInFailure.key == attempt_of(username, "").user))


def _row(session: Session, key: str, now: datetime) -> SignInFailure:
    """The key's row, created if missing (by this or a concurrent attempt), locked until the transaction ends."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    values = {"key": key, "failures": 0, "last_failure_at": now}
    session.execute(insert(SignInFailure).values(values).on_conflict_do_nothing(index_elements=["key"]))
    row = session.scalar(
        select(SignInFailure)
        .where(SignInFailure.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


def _refusal(row: SignInFailure, now: datetime) -> TooManySignIns:
    assert row.locked_until is not None
    seconds = max(math.ceil((row.locked_until - now).total_seconds()), 1)
    until = f"{row.locked_until:%H:%M:%S} UTC"
    kind, _, value = row.key.partition(":")
    who = f"for user name `{value}`" if kind == "user" else f"from your address (`{value}`)"
    return TooManySignIns(
        f"Too many failed sign-ins {who}; sign-in is paused for {seconds} seconds, even with the right password. "
        f"Try again after {until}.",
        seconds,
    )


def _network(address: str) -> str:
    """An IPv4 address as it is; an IPv6 one as its /64, which one client usually holds whole."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100] or "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
