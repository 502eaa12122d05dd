"""Identity federation's trust rules: which CI issuer, audience and claims may exchange a job's OIDC token for a
token that uploads to one source (`packyard trust create|list|remove`; `federation.py` applies them)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.errors import InvalidTrustRule, TrustRuleNotFound
from packyard.auth.models import TrustRule
from packyard.changelog.events import record
from packyard.repository.models import Source

# Checked by the exchange itself (signature, `--issuer`, `--audience`, expiry, replay), so never a rule's claim.
RESERVED = frozenset({"iss", "aud", "exp", "iat", "nbf", "jti"})


@dataclass(frozen=True)
class Rule:
    """A trust rule as the exchange and the list read it: its source by name and its claims as a dict."""

    id: int
    source: str
    issuer: str
    audience: str
    claims: dict[str, str]

    @property
    def claims_text(self) -> str:
        return claims_text(self.claims)


def claims_text(claims: dict[str, str]) -> str:
    """`repository=org/app ref=refs/heads/main`, as `--claim` takes them (quoted where a shell needs it)."""
    return " ".join(shlex.quote(f"{key}={value}") for key, value in claims.items())


def parse_claims(items: Iterable[str]) -> dict[str, str]:
    """`--claim key=value` options as a dict; at least one, so a rule never trusts every job of an issuer."""
    claims: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not value:
            raise InvalidTrustRule(
                f"Claim {item!r} is not `key=value`; write it as the CI token names it, e.g. "
                "`--claim repository=org/app` or `--claim ref=refs/heads/main`."
            )
        if key in RESERVED:
            raise InvalidTrustRule(
                f"Claim `{key}` is checked by the exchange itself; give the issuer with `--issuer` and the audience "
                "with `--audience`, and claims that name the job, e.g. `--claim repository=org/app`."
            )
        if key in claims and claims[key] != value:
            raise InvalidTrustRule(
                f"Claim `{key}` is given twice ({claims[key]!r} and {value!r}); a token has one value for it, so "
                "make one rule per value."
            )
        claims[key] = value
    if not claims:
        raise InvalidTrustRule(
            "A trust rule needs at least one `--claim`, or it would let every job of the issuer upload; name the "
            "job's repository and branch, e.g. `--claim repository=org/app --claim ref=refs/heads/main`."
        )
    return claims


def check_issuer(issuer: str) -> str:
    issuer = issuer.strip().rstrip("/")
    if not issuer.startswith(("https://", "http://")) or not issuer.split("://", 1)[1]:
        raise InvalidTrustRule(
            f"Issuer {issuer!r} is not an http(s) URL; give the CI's OpenID issuer exactly as its tokens name it in "
            "`iss`, e.g. `https://token.actions.githubusercontent.com` (GitHub Actions) or `https://gitlab.com`."
        )
    return issuer


def create_rule(session: Session, source: str, issuer: str, claims: Iterable[str], audience: str) -> Rule:
    """A new rule; `audience` is what the CI must ask its token for (the CLI defaults it to `[server] address`)."""
    source_row = session.scalar(select(Source).where(Source.name == source))
    if source_row is None:
        known = ", ".join(f"`{n}`" for n in session.scalars(select(Source.name).order_by(Source.name)))
        raise InvalidTrustRule(
            f"Source `{source}` does not exist (sources: {known or 'none'}); `packyard source list` shows them."
        )
    if source_row.type != "local-python":
        raise InvalidTrustRule(
            f"Source `{source}` is a `{source_row.type}` source, which takes no uploads; name a `local-python` "
            "source (`packyard source list` shows each source's type)."
        )
    issuer = check_issuer(issuer)
    parsed = parse_claims(claims)
    audience = audience.strip()
    if not audience:
        raise InvalidTrustRule(
            "The audience is empty; give the one the CI asks its token for with `--audience`, or leave it out for "
            "the server's `[server] address`."
        )
    row = TrustRule(source_id=source_row.id, issuer=issuer, audience=audience, claims=json.dumps(parsed))
    session.add(row)
    session.flush()
    record(session, "trust-create", source_id=source_row.id, detail=f"{row.id} {issuer} {claims_text(parsed)}")
    return Rule(row.id, source_row.name, issuer, audience, parsed)


def remove_rule(session: Session, rule_id: int) -> Rule:
    row = session.get(TrustRule, rule_id)
    if row is None:
        raise TrustRuleNotFound(f"No trust rule {rule_id}; `packyard trust list` shows the rules and their ids.")
    source = session.get(Source, row.source_id)
    rule = Rule(row.id, source.name if source else "?", row.issuer, row.audience, _claims(row.claims))
    session.delete(row)
    record(session, "trust-remove", source_id=row.source_id, detail=f"{rule_id} {row.issuer}")
    return rule


def list_rules(session: Session, issuer: str | None = None) -> list[Rule]:
    """Every rule (or those naming `issuer`), oldest first: the exchange tries them in that order."""
    query = select(TrustRule, Source.name).join(Source, Source.id == TrustRule.source_id).order_by(TrustRule.id)
    if issuer is not None:
        query = query.where(TrustRule.issuer == issuer.rstrip("/"))
    return [Rule(row.id, name, row.issuer, row.audience, _claims(row.claims)) for row, name in session.execute(query)]


def _claims(text: str) -> dict[str, str]:
    loaded: Any = json.loads(text or "{}")
    return {str(k): str(v) for k, v in loaded.items()}
