"""A real OpenID provider on loopback for the SSO tests: tests/idp/provider.mjs (panva's oidc-provider, installed
by `make test` from tests/idp/package-lock.json), with test users, Packyard's client and CI clients whose tokens
carry a CI job's claims. `approve_device` plays the person who types the user code at the provider."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT, free_port

HERE = ROOT / "tests" / "idp"
CLIENT_ID = "packyard"
CLIENT_SECRET = "packyard-test-secret"
# name -> password, email and groups; the tests' people at the company's identity provider.
USERS: dict[str, dict[str, Any]] = {
    "ines": {"password": "ines-password-1", "email": "ines@example.com", "groups": ["analysts", "packyard-admins"]},
    "omar": {"password": "omar-password-1", "email": "omar@example.com", "groups": ["analysts", "data-eng"]},
    "rita": {"password": "rita-password-1", "email": "rita@example.com", "groups": ["sales"]},
}
# CI clients: the claims a job's token carries (as GitHub Actions' do), and how long it lives.
CI_CLIENTS: dict[str, dict[str, Any]] = {
    "ci-main": {"repository": "org/app", "ref": "refs/heads/main"},
    "ci-branch": {"repository": "org/app", "ref": "refs/heads/feature"},
    "ci-other": {"repository": "org/other", "ref": "refs/heads/main"},
}
CI_SECRET = "ci-test-secret"


@dataclass
class IdP:
    issuer: str
    process: subprocess.Popen[bytes]
    log: Path
    discovery: dict[str, Any] = field(default_factory=dict)

    def ci_token(self, audience: str, client: str = "ci-main") -> str:
        """A CI job's OIDC token: a JWT signed by this provider for `audience`, with `client`'s claims."""
        data = {"grant_type": "client_credentials", "resource": audience, "scope": "ci"}
        answer = httpx.post(self.discovery["token_endpoint"], data=data, auth=(client, CI_SECRET), timeout=30)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def approve_device(self, user_code: str, user: str, password: str | None = None) -> httpx.Response:
        """Type the user code at the provider's device page and sign in there, as a person would."""
        password = password or USERS[user]["password"]
        with httpx.Client(base_url=self.issuer, follow_redirects=True, timeout=30) as browser:
            page = browser.get("/device", params={"user_code": user_code})
            form = _form(page.text)
            answer = browser.post(form.pop("_action"), data={**form, "user_code": user_code, "confirm": "yes"})
            if "/interaction/" in str(answer.url):
                action = re.search(r'action="([^"]+)"', answer.text)
                assert action, answer.text
                answer = browser.post(action[1], data={"login": user, "password": password})
            return answer

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _form(html: str) -> dict[str, str]:
    """The action and hidden fields of the first form on a page."""
    action = re.search(r'<form[^>]*action="([^"]+)"', html)
    assert action, html
    fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html))
    return {"_action": action[1].replace("&amp;", "&"), **fields}


def node() -> str:
    found = shutil.which("node")
    assert found, "node is not installed; `make test` installs it (apt-get install nodejs npm)"
    return found


@contextmanager
def identity_provider(
    tmp: Path, redirect_uris: list[str], port: int | None = None, users: dict[str, dict[str, Any]] | None = None
) -> Iterator[IdP]:
    """The provider on 127.0.0.1, its Packyard client allowed `redirect_uris`, with `users` (USERS unless given;
    start it again on the same port with other groups to change what the next sign-in says)."""
    assert (HERE / "node_modules" / "oidc-provider").is_dir(), "`make test` installs the test IdP (npm ci)"
    port = port or free_port()
    issuer = f"http://127.0.0.1:{port}"
    clients: list[dict[str, Any]] = [
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": redirect_uris,
            "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        },
    ]
    for name, claims in CI_CLIENTS.items():
        clients.append({
            "client_id": name, "client_secret": CI_SECRET, "grant_types": ["client_credentials"],
            "response_types": [], "redirect_uris": [], "ci_claims": claims,
            "token_endpoint_auth_method": "client_secret_basic",
        })  # fmt: skip
    clients.append({
        "client_id": "ci-short", "client_secret": CI_SECRET, "grant_types": ["client_credentials"],
        "response_types": [], "redirect_uris": [], "ci_claims": CI_CLIENTS["ci-main"], "token_ttl": 2,
        "token_endpoint_auth_method": "client_secret_basic",
    })  # fmt: skip
    config = tmp / f"idp-{port}.json"
    config.write_text(json.dumps({"issuer": issuer, "port": port, "users": users or USERS, "clients": clients}))
    log = tmp / f"idp-{port}.log"
    process = subprocess.Popen(
        [node(), str(HERE / "provider.mjs")],
        env={"IDP_CONFIG": str(config), "PATH": "/usr/bin:/bin", "NODE_ENV": "test"},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    idp = IdP(issuer, process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the test IdP exited:\n{log.read_text()}")
        try:
            idp.discovery = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).json()
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        idp.stop()
        raise RuntimeError(f"the test IdP did not start:\n{log.read_text()}")
    try:
        yield idp
    finally:
        idp.stop()
