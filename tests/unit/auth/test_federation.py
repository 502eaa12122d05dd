"""How a CI token's claims are matched against trust rules, and how the refusal names the closest rule's
differences (the end-to-end exchange is tests/test_federation.py)."""

from __future__ import annotations

import pytest

from packyard.auth.errors import InvalidIdentityToken, InvalidTrustRule
from packyard.auth.federation import _matching, spent_key
from packyard.auth.trust import Rule, claims_text, parse_claims

ISSUER = "https://ci.example.com"


def rule(id: int, **claims: str) -> Rule:
    return Rule(id, f"src-{id}", ISSUER, "https://pkgs.example.com", claims)


def test_the_oldest_rule_whose_claims_all_match_wins() -> None:
    rules = [rule(1, repository="org/app", ref="refs/heads/main"), rule(2, repository="org/app")]
    assert _matching(rules, {"repository": "org/app", "ref": "refs/heads/main", "sha": "abc"}, ISSUER).id == 1
    assert _matching(rules, {"repository": "org/app", "ref": "refs/heads/x"}, ISSUER).id == 2


def test_non_string_claims_compare_as_json_writes_them() -> None:
    rules = [rule(1, ref_protected="true", run_attempt="1")]
    assert _matching(rules, {"ref_protected": True, "run_attempt": 1}, ISSUER).id == 1


def test_the_refusal_names_the_closest_rules_differing_claims_not_its_values() -> None:
    rules = [rule(1, repository="org/x", ref="refs/heads/main"), rule(2, repository="org/app", ref="refs/heads/main")]
    with pytest.raises(InvalidIdentityToken) as caught:
        _matching(rules, {"repository": "org/app"}, ISSUER)
    assert str(caught.value) == (
        f"The CI token's claims match no trust rule for `{ISSUER}`: the closest, rule 2 (source `src-2`, 2 claims), "
        "needs another `ref` (the token has none); `packyard trust list` shows the rules."
    )
    assert "refs/heads/main" not in str(caught.value)


def test_claims_parse_from_options() -> None:
    assert parse_claims(["repository=org/app", "ref=refs/heads/main", "repository=org/app"]) == {
        "repository": "org/app",
        "ref": "refs/heads/main",
    }
    assert parse_claims(["sub=repo:org/app:ref=x"]) == {"sub": "repo:org/app:ref=x"}
    assert claims_text({"workflow": "Build and test", "ref": "main"}) == "'workflow=Build and test' ref=main"
    with pytest.raises(InvalidTrustRule, match="given twice"):
        parse_claims(["ref=a", "ref=b"])
    with pytest.raises(InvalidTrustRule, match="is not `key=value`"):
        parse_claims(["=x"])


def test_a_jti_is_spent_per_issuer() -> None:
    assert spent_key(ISSUER, "1") != spent_key("https://other.example.com", "1")
    assert len(spent_key(ISSUER, "1")) == 64
