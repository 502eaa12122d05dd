"""CI without a stored secret (issue 15): a CI job's OIDC token from a real OpenID provider (tests/idp.py) is
exchanged at `/__api__/token` for a token that uploads to one source, when a trust rule (`packyard trust ...`) names
its issuer, audience and claims. twine and `uv publish` upload with it; every refusal is a 401 saying which check
failed. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from packyard.auth import federation
from tests.conftest import Server, run, uv_bin
from tests.dists import make_wheel
from tests.idp import IdP, identity_provider
from tests.test_sharing_cli import error_of, events

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT = "urn:ietf:params:oauth:token-type:jwt"
SOURCE = "local-python-src"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdP]:
    with identity_provider(tmp_path_factory.mktemp("idp"), []) as provider:
        yield provider


@pytest.fixture(scope="module")
def rule(server: Server, idp: IdP) -> str:
    """The rule a team would write for its main branch: `org/app` on `refs/heads/main` uploads to the source."""
    created = server.cli(
        "trust", "create", "--source", SOURCE, "--issuer", idp.issuer,
        "--claim", "repository=org/app", "--claim", "ref=refs/heads/main",
    )  # fmt: skip
    found = re.match(r"Rule (\d+):", created.stdout)
    assert found, created.stdout
    server.cli("source", "create", "--name", "other-src")
    server.cli("source", "create", "--name", "pypi-src", "--type", "pypi", "--upstream", "https://pypi.org/simple/")
    server.cli("repo", "create", "--name", "private", "--authenticated")
    server.cli("repo", "subscribe", "--repo", "private", "--source", SOURCE)
    return found[1]


def exchange(server: Server, token: str) -> httpx.Response:
    """What a CI job's step does with curl: RFC 8693 token exchange of its OIDC token."""
    form = {"grant_type": GRANT, "subject_token": token, "subject_token_type": JWT}
    return httpx.post(f"{server.url}/__api__/token", data=form, timeout=60)


def minted(server: Server, token: str) -> str:
    answer = exchange(server, token)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == federation.MAX_LIFETIME
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    return str(body["access_token"])


def refused(server: Server, token: str) -> str:
    """The 401's `error_description` for a token that must not be exchanged."""
    answer = exchange(server, token)
    assert answer.status_code == 401, answer.text
    body = answer.json()
    assert body["error"] == "invalid_grant", body
    return str(body["error_description"])


def files_of(server: Server, project: str) -> list[str]:
    page = httpx.get(f"{server.index}{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert page.status_code == 200, page.text
    return [f["filename"] for f in page.json()["files"]]


def test_a_ci_job_uploads_with_twine_and_uv_publish(
    server: Server, idp: IdP, rule: str, tmp_path: Path, client_env: dict[str, str]
) -> None:
    token = minted(server, idp.ci_token(audience=server.url))
    wheel = make_wheel(tmp_path / "twine", "ci-built", "1.0")
    server.twine(wheel, token=token)

    token = minted(server, idp.ci_token(audience=server.url))
    other = make_wheel(tmp_path / "uv", "ci-built", "1.1")
    run([str(uv_bin()), "publish", "--publish-url", server.upload_url, "--token", token, str(other)], client_env)

    assert sorted(files_of(server, "ci-built")) == sorted([wheel.name, other.name])
    listed = server.cli("token", "list").stdout
    assert f"CI {idp.issuer} repository=org/app ref=refs/heads/main (trust rule {rule})" in listed


def test_the_minted_token_uploads_to_its_source_only(server: Server, idp: IdP, rule: str, tmp_path: Path) -> None:
    token = minted(server, idp.ci_token(audience=server.url))
    wheel = make_wheel(tmp_path, "ci-elsewhere", "1.0")
    result = server.twine(wheel, source="other-src", token=token, check=False)
    assert result.returncode != 0
    assert "403" in result.stdout + result.stderr, result.stdout + result.stderr

    denied = httpx.get(f"{server.url}/private/latest/simple/", auth=("__token__", token))
    assert denied.status_code == 403, denied.text
    assert "(trust rule " + rule + ")` does not grant `repos:read` on repo `private`" in denied.text


def test_untrusted_issuer(server: Server, rule: str, tmp_path: Path) -> None:
    with identity_provider(tmp_path, []) as stranger:
        message = refused(server, stranger.ci_token(audience=server.url))
    assert message == (
        f"No trust rule names the issuer `{stranger.issuer}`; an administrator adds one with `packyard trust create "
        f"--source SOURCE --issuer {stranger.issuer} --claim repository=ORG/REPO`."
    )


def test_wrong_audience(server: Server, idp: IdP, rule: str) -> None:
    assert refused(server, idp.ci_token(audience="https://elsewhere.example.com")) == (
        f"The CI token is not for this server: its audience is not `{server.url}`."
    )


def test_expired(server: Server, idp: IdP, rule: str) -> None:
    token = idp.ci_token(audience=server.url, client="ci-short")
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    # Past `exp` by federation's leeway (5 s, not the 30 s sign-in forgives), and a little more.
    time.sleep(max(0.0, expires + federation.LEEWAY + 0.5 - time.time()))
    message = refused(server, token)
    assert re.fullmatch(
        r"The CI token has expired \(at \d{4}-\d\d-\d\d \d\d:\d\d UTC, \d+ s ago\); request it in the job right "
        r"before the exchange\.",
        message,
    ), message


def test_replayed(server: Server, idp: IdP, rule: str) -> None:
    token = idp.ci_token(audience=server.url)
    minted(server, token)
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert refused(server, token) == (
        f"The CI token `{jti}` was already used: each is exchanged once; request a new one in the job."
    )


@pytest.mark.parametrize(
    ("client", "differing"),
    [
        ("ci-branch", "`ref` (the token has `refs/heads/feature`)"),
        ("ci-other", "`repository` (the token has `org/other`)"),
    ],
)
def test_claims_that_match_no_rule(server: Server, idp: IdP, rule: str, client: str, differing: str) -> None:
    assert refused(server, idp.ci_token(audience=server.url, client=client)) == (
        f"The CI token's claims match no trust rule for `{idp.issuer}`: the closest, rule {rule} (source `{SOURCE}`, "
        f"2 claims), needs another {differing}; `packyard trust list` shows the rules."
    )


def test_a_forged_token_fails_the_signature(server: Server, idp: IdP, rule: str) -> None:
    """ci-other's real token with its claims rewritten to main's: the issuer's keys do not sign what it now says.
    (A second provider instance would not do: oidc-provider's development keys are the same in every instance.)"""
    header, payload, signature = idp.ci_token(audience=server.url, client="ci-other").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["repository"] = "org/app"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert refused(server, f"{header}.{forged}.{signature}") == (
        f"The CI token's signature does not verify with `{idp.issuer}`'s keys."
    )


def test_a_removed_rule_trusts_no_more(server: Server, idp: IdP, rule: str) -> None:
    created = server.cli(
        "trust", "create", "--source", "other-src", "--issuer", idp.issuer,
        "--claim", "repository=org/app", "--claim", "ref=refs/heads/feature",
    ).stdout  # fmt: skip
    feature_rule = created.split(":")[0].removeprefix("Rule ")
    minted(server, idp.ci_token(audience=server.url, client="ci-branch"))

    assert server.cli("trust", "remove", feature_rule).stdout.strip() == (
        f"Removed trust rule {feature_rule} (`{idp.issuer}` to source `other-src`)."
    )
    message = refused(server, idp.ci_token(audience=server.url, client="ci-branch"))
    assert message.startswith(f"The CI token's claims match no trust rule for `{idp.issuer}`: the closest, rule {rule}")


def test_trust_create_list_and_remove(server: Server, idp: IdP, rule: str) -> None:
    created = server.cli(
        "trust", "create", "--source", "other-src", "--issuer", "https://token.actions.githubusercontent.com/",
        "--claim", "repository=org/app", "--claim", "environment=release", "--audience", "https://pkgs.example.com",
    ).stdout  # fmt: skip
    rule_id = created.split(":")[0].removeprefix("Rule ")
    assert created.strip() == (
        f"Rule {rule_id}: jobs of `https://token.actions.githubusercontent.com` with repository=org/app "
        "environment=release may upload to source `other-src`, with a token for the audience "
        "`https://pkgs.example.com`."
    )
    lines = server.cli("trust", "list").stdout.splitlines()
    assert lines[0].split() == ["ID", "SOURCE", "ISSUER", "AUDIENCE", "CLAIMS"]
    assert [rule, SOURCE, idp.issuer, server.url, "repository=org/app", "ref=refs/heads/main"] in [
        line.split() for line in lines
    ]
    assert [
        rule_id, "other-src", "https://token.actions.githubusercontent.com", "https://pkgs.example.com",
        "repository=org/app", "environment=release",
    ] in [line.split() for line in lines]  # fmt: skip

    server.cli("trust", "remove", rule_id)
    assert rule_id not in [line.split()[0] for line in server.cli("trust", "list").stdout.splitlines()]
    changes = events(server, "trust-create", "trust-remove")
    assert (
        "trust-create",
        f"{rule_id} https://token.actions.githubusercontent.com repository=org/app environment=release",
    ) in changes
    assert ("trust-remove", f"{rule_id} https://token.actions.githubusercontent.com") in changes


def test_trust_errors_say_what_is_wrong_and_what_to_run(server: Server, idp: IdP, rule: str) -> None:
    issuer = ["--issuer", idp.issuer]
    before = server.cli("trust", "list").stdout
    message = error_of(server, "trust", "create", "--source", "nope", *issuer, "--claim", "repository=org/app")
    assert message == (
        "error: Source `nope` does not exist (sources: `local-python-src`, `other-src`, `pypi-src`); "
        "`packyard source list` shows them."
    )
    assert server.cli(*shlex.split(message.split("`")[-2])[1:]).returncode == 0
    assert error_of(server, "trust", "create", "--source", SOURCE, "--issuer", "ftp://ci", "--claim", "a=b") == (
        "error: Issuer 'ftp://ci' is not an http(s) URL; give the CI's OpenID issuer exactly as its tokens name it "
        "in `iss`, e.g. `https://token.actions.githubusercontent.com` (GitHub Actions) or `https://gitlab.com`."
    )
    assert error_of(server, "trust", "create", "--source", SOURCE, *issuer, "--claim", "repository") == (
        "error: Claim 'repository' is not `key=value`; write it as the CI token names it, e.g. "
        "`--claim repository=org/app` or `--claim ref=refs/heads/main`."
    )
    assert error_of(server, "trust", "create", "--source", SOURCE, *issuer, "--claim", "aud=x") == (
        "error: Claim `aud` is checked by the exchange itself; give the issuer with `--issuer` and the audience with "
        "`--audience`, and claims that name the job, e.g. `--claim repository=org/app`."
    )
    assert error_of(server, "trust", "create", "--source", SOURCE, *issuer) == (
        "error: A trust rule needs at least one `--claim`, or it would let every job of the issuer upload; name the "
        "job's repository and branch, e.g. `--claim repository=org/app --claim ref=refs/heads/main`."
    )
    assert error_of(server, "trust", "create", "--source", "pypi-src", *issuer, "--claim", "a=b") == (
        "error: Source `pypi-src` is a `pypi` source, which takes no uploads; name a `local-python` source "
        "(`packyard source list` shows each source's type)."
    )
    assert error_of(server, "trust", "remove", "9999") == (
        "error: No trust rule 9999; `packyard trust list` shows the rules and their ids."
    )
    assert server.cli("trust", "list").stdout == before
