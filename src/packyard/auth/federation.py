"""Identity federation: a CI job's OIDC token, from an issuer a trust rule names and with the claims it requires,
exchanged for a short-lived token that uploads to the rule's source. Each refusal is an InvalidIdentityToken (401)
saying which check failed: no rule for the issuer, signature, audience, expiry, a token used before, or claims."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from packyard import formatting
from packyard.auth.errors import InvalidIdentityToken
from packyard.auth.models import SpentToken
from packyard.auth.tokens import create_token
from packyard.auth.trust import Rule, list_rules
from packyard.db import utcnow

if TYPE_CHECKING:
    from packyard.auth.exchange import Exchange

WHAT = "CI token"
# Clock difference forgiven on a CI token's `exp`, tighter than oidc.LEEWAY's 30 s for sign-in: a job asks for
# its token a moment before exchanging it, and a server and a CI issuer that keep NTP time differ by far less.
LEEWAY = 5
# The minted token lives `[oidc] token_lifetime`, at most this long: an upload step takes minutes, and a token
# that leaks into a job's log should be worthless soon after.
MAX_LIFETIME = 900


def exchange(server: Exchange, token: str, issuer: str) -> tuple[str, int]:
    """A token that may upload to the source of the first rule whose claims the CI token carries, and its lifetime
    in seconds. The issuer's keys are fetched only once a rule names it, so a token cannot make this server call
    an address of its choosing."""
    with server.db.session() as session:
        rules = list_rules(session, issuer)
    if not rules:
        raise InvalidIdentityToken(
            f"No trust rule names the issuer `{issuer}`; an administrator adds one with `packyard trust create "
            f"--source SOURCE --issuer {issuer} --claim repository=ORG/REPO`."
        )
    claimed = _audiences(jwt.decode(token, options={"verify_signature": False}))
    # With no rule for the token's audience, verify against the first rule's, so the answer is the one of any
    # other check that fails: the signature first, then the audience the rule expects.
    audience = next((rule.audience for rule in rules if rule.audience in claimed), rules[0].audience)
    claims = server.issuers.get(issuer).verify(token, audience=audience, what=WHAT)
    for_audience = [rule for rule in rules if rule.audience in _audiences(claims)]  # now verified
    _check_expiry(claims)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidIdentityToken(
            "The CI token has no `jti`, so a replay could not be told from its first use; use a CI whose tokens "
            "carry one (GitHub Actions and GitLab do)."
        )
    rule = _matching(for_audience, claims, issuer)
    lifetime = min(server.settings.oidc.token_lifetime, MAX_LIFETIME)
    description = f"CI {issuer} {rule.claims_text} (trust rule {rule.id})"
    try:
        with server.db.session() as session:
            # Spent tokens are needed only until they expire; clearing them here keeps the table small.
            session.execute(delete(SpentToken).where(SpentToken.expires_at < utcnow()))
            key = spent_key(issuer, jti)
            if session.get(SpentToken, key) is not None:
                raise _replayed(jti)
            # Kept past `exp` by the leeway: until then the token would still pass every other check.
            session.add(SpentToken(key=key, expires_at=datetime.fromtimestamp(claims["exp"] + LEEWAY, UTC)))
            session.flush()  # another node exchanging the same token at once fails here, on the primary key
            minted, _ = create_token(
                session,
                server.secret,
                server.settings.server.address,
                description,
                ["sources:write"],
                [rule.source],
                expires=timedelta(seconds=lifetime),
            )
    except IntegrityError as exc:
        raise _replayed(jti) from exc
    return minted, lifetime


def spent_key(issuer: str, jti: str) -> str:
    """The `spent_tokens` key of a CI token: its issuer and `jti`, hashed (a `jti` is unique per issuer only)."""
    return hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()


def _replayed(jti: str) -> InvalidIdentityToken:
    return InvalidIdentityToken(
        f"The CI token `{jti}` was already used: each is exchanged once; request a new one in the job."
    )


def _audiences(claims: dict[str, Any]) -> list[str]:
    """A token's `aud`: one string or a list of them."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def _check_expiry(claims: dict[str, Any]) -> None:
    expires = float(claims["exp"])
    late = time.time() - expires
    if late >= LEEWAY:
        at = formatting.moment(datetime.fromtimestamp(expires, UTC))
        raise InvalidIdentityToken(
            f"The CI token has expired (at {at}, {late:.0f} s ago); request it in the job right before the exchange."
        )


def _value(claims: dict[str, Any], key: str) -> str | None:
    """A claim as a rule compares it: strings as they are, other JSON values (`true`, `42`) as JSON writes them."""
    if key not in claims:
        return None
    value = claims[key]
    if isinstance(value, str):
        return value
    return "true" if value is True else "false" if value is False else str(value)


def _differences(rule: Rule, claims: dict[str, Any]) -> list[str]:
    return [key for key, wanted in rule.claims.items() if _value(claims, key) != wanted]


def _matching(rules: list[Rule], claims: dict[str, Any], issuer: str) -> Rule:
    """The first rule (oldest) whose claims the token carries exactly; else say how the closest one differs."""
    for rule in rules:
        if not _differences(rule, claims):
            return rule
    closest = min(rules, key=lambda rule: (len(_differences(rule, claims)), rule.id))
    differing = []
    for key in _differences(closest, claims):
        value = _value(claims, key)
        differing.append(f"`{key}` (the token has {'none' if value is None else f'`{value}`'})")
    # The rule's expected values are not repeated to the caller: any job of a public CI can get a token from
    # the same issuer, and needs no map of what would pass.
    raise InvalidIdentityToken(
        f"The CI token's claims match no trust rule for `{issuer}`: the closest, rule {closest.id} (source "
        f"`{closest.source}`, {len(closest.claims)} claims), needs another {' and '.join(differing)}; "
        "`packyard trust list` shows the rules."
    )
