"""An authenticated repository: every index and file URL answers 401 (with a Basic challenge) or 403 unless the
token grants `repos:read` on it, for GET and HEAD; pip and uv install from it with credentials from `.netrc`."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import jwt
import pytest
from sqlalchemy import select

from packyard.auth.models import Token
from packyard.config import load_settings
from packyard.db import Database
from tests.conftest import Server, after_data_dir, pip, run, uv_bin
from tests.dists import make_wheel

JSON_PAGE = "application/vnd.pypi.simple.v1+json"
PROJECT = "secret-pkg"

# Tokens by role, each made with `packyard token create`.
GRANTS: dict[str, tuple[str, ...]] = {
    "private": ("--scope", "repos:read", "--repos", "private"),
    "all-repos": ("--scope", "repos:read", "--repos", "*"),
    "admin": ("--scope", "admin"),
    "pypi-only": ("--scope", "repos:read", "--repos", "pypi"),
    "writer": ("--scope", "sources:write", "--sources", "local-python-src"),
}
EXPIRED = "expired-token"
REVOKED = "revoked-token"


@dataclass
class Private:
    server: Server
    index: str
    page: str
    file: str
    wheel: bytes
    tokens: dict[str, str]

    @property
    def targets(self) -> dict[str, str]:
        return {"index": self.index, "page": self.page, "file": self.file}


def basic(password: str, user: str = "__token__") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def flat(text: str) -> str:
    return " ".join(text.replace("`", "").split())


def create_token(server: Server, description: str, *args: str) -> str:
    return server.cli("token", "create", "-q", "--description", description, *args).stdout.strip()


def token_rows(server: Server) -> dict[str, list[str]]:
    """`packyard token list`, by description: the line's words (id first, state last)."""
    lines = server.cli("token", "list").stdout.splitlines()
    rows: dict[str, list[str]] = {}
    for line in lines[1:]:
        words = line.split()
        for description in (EXPIRED, REVOKED, *(f"test {' '.join(g)}" for g in GRANTS.values())):
            if f" {description} " in f" {line} ":
                rows[description] = words
    return rows


@pytest.fixture(scope="module")
def private(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Private:
    server.cli("repo", "create", "--name", "private", "--authenticated")  # before the tokens that name it

    # CLI runs cost seconds of imports each; run them side by side. The expiring token goes first.
    with ThreadPoolExecutor() as pool:
        expired = pool.submit(
            lambda: (create_token(server, EXPIRED, *GRANTS["private"], "--expires", "1s"), time.time())
        )
        revoked = pool.submit(create_token, server, REVOKED, *GRANTS["private"])
        repo = pool.submit(server.cli, "repo", "subscribe", "--repo", "private", "--source", "local-python-src")
        granted = dict(zip(GRANTS, pool.map(lambda args: server.token(*args), GRANTS.values()), strict=True))
        repo.result()
    expired_token, expired_created = expired.result()
    tokens = {**granted, "expired": expired_token, "revoked": revoked.result()}
    server.wait_synced()

    path = make_wheel(tmp_path_factory.mktemp("private-dist"), PROJECT, "1.0", payload=b"SECRET = 42\n")
    data = path.read_bytes()
    form = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": PROJECT,
        "version": "1.0",
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    }
    r = httpx.post(
        server.upload_url,
        data=form,
        files={"content": (path.name, data, "application/octet-stream")},
        headers=basic(tokens["writer"]),
    )
    assert r.status_code == 200, r.text

    index = f"{server.url}/private/latest/simple/"
    page = f"{index}{PROJECT}/"
    deadline = time.monotonic() + 10  # root pages are re-rendered up to half a second after a new project
    while PROJECT not in httpx.get(index, headers=basic(tokens["private"])).text:
        assert time.monotonic() < deadline, "the private root page never listed the upload"
        time.sleep(0.1)
    r = httpx.get(page, headers={**basic(tokens["private"]), "Accept": JSON_PAGE})
    assert r.status_code == 200, r.text
    (entry,) = r.json()["files"]

    # Use the token once, so the server has it cached when it is revoked.
    assert httpx.get(index, headers=basic(tokens["revoked"])).status_code == 200
    token_id = token_rows(server)[REVOKED][0]
    assert uuid.UUID(token_id)
    server.cli("token", "revoke", token_id)
    server.wait_synced()
    time.sleep(max(0.0, expired_created + 2 - time.time()))  # the 1 s token has surely expired
    return Private(server, index, page, urljoin(page, entry["url"]), data, tokens)


@dataclass(frozen=True)
class Cred:
    id: str
    headers: Callable[[Private], dict[str, str]]
    status: int
    fragment: str = ""


def _foreign_token(p: Private) -> dict[str, str]:
    """A well-formed token with every grant, signed with a key this server does not have."""
    claims = {"aud": "packyard", "jti": str(uuid.uuid4()), "iat": int(time.time()), "scopes": {"admin": ["*"]}}
    return basic(jwt.encode(claims, "not-the-server-secret-" * 3, algorithm="HS256"))


CREDS = [
    Cred("anonymous", lambda p: {}, 401, "Authentication required"),
    Cred("empty-password", lambda p: basic(""), 401, "Authentication required"),
    Cred("garbage-token", lambda p: basic("garbage"), 401, "The token is not valid for this server"),
    Cred("foreign-signature", _foreign_token, 401, "The token is not valid for this server"),
    Cred(
        "expired",
        lambda p: basic(p.tokens["expired"]),
        401,
        f"The token {EXPIRED} has expired; ask an administrator for a new one (packyard token create --description "
        f"{EXPIRED} --scope repos:read --repos private --expires 30d).",
    ),
    Cred("revoked", lambda p: basic(p.tokens["revoked"]), 401, f"The token {REVOKED} was revoked"),
    Cred("read-other-repo", lambda p: basic(p.tokens["pypi-only"]), 403, "does not grant repos:read on repo private"),
    Cred("sources-write-only", lambda p: basic(p.tokens["writer"]), 403, "does not grant repos:read on repo private"),
    Cred("read-private", lambda p: basic(p.tokens["private"]), 200),
    Cred("read-all-repos", lambda p: basic(p.tokens["all-repos"]), 200),
    Cred("admin", lambda p: basic(p.tokens["admin"]), 200),
    Cred("bearer", lambda p: {"Authorization": f"Bearer {p.tokens['private']}"}, 200),
]


@pytest.mark.parametrize("cred", CREDS, ids=[c.id for c in CREDS])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("target", ["index", "page", "file"])
def test_authenticated_repository(private: Private, target: str, method: str, cred: Cred) -> None:
    r = httpx.request(method, private.targets[target], headers=cred.headers(private))
    assert r.status_code == cred.status, f"{r.status_code} {r.reason_phrase}: {r.text}"
    if cred.status == 401:
        # pip and uv send credentials only after a 401 that challenges for Basic auth.
        assert r.headers.get("www-authenticate", "").startswith("Basic "), r.headers
    if cred.status >= 400:
        assert cred.fragment in r.reason_phrase
        if method == "GET":
            assert cred.fragment in flat(r.text)
        assert PROJECT not in r.text and "sha256" not in r.text.lower(), "an error leaked the repository's content"
        return
    assert "private" in r.headers["cache-control"], "a shared cache must not keep an authenticated response"
    if method == "HEAD":
        assert r.content == b""
    elif target == "file":
        assert r.content == private.wheel
    else:
        assert PROJECT in r.text


@pytest.mark.parametrize(
    ("url", "found"),
    [
        (lambda p: f"{p.index}no-such-project/", 404),
        (lambda p: f"{p.index}Secret_Pkg/", 301),  # not the normalized name: a redirect, but only when allowed
        (lambda p: f"{p.index}{PROJECT}", 301),  # no trailing slash
        (lambda p: p.file.replace(hashlib.sha256(p.wheel).hexdigest(), "0" * 64), 404),
        (lambda p: p.file + ".metadata", 200),
    ],
    ids=["missing-project", "unnormalized-name", "no-slash", "unknown-file", "metadata"],
)
def test_other_urls_of_the_repository_need_a_token_too(
    private: Private, url: Callable[[Private], str], found: int
) -> None:
    # Answering 404 to anonymous users would make uv fall through to the next index (dependency confusion).
    target = url(private)
    for method in ("GET", "HEAD"):
        anonymous = httpx.request(method, target)
        assert anonymous.status_code == 401, f"{method} {target}: {anonymous.status_code}"
        assert anonymous.headers.get("www-authenticate", "").startswith("Basic ")
        forbidden = httpx.request(method, target, headers=basic(private.tokens["pypi-only"]))
        assert forbidden.status_code == 403, f"{method} {target}: {forbidden.status_code}"
        allowed = httpx.request(method, target, headers=basic(private.tokens["private"]))
        assert allowed.status_code == found, f"{method} {target}: {allowed.status_code}"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_public_repository_still_answers_anonymous_requests(private: Private, method: str) -> None:
    public_page = f"{private.server.index}{PROJECT}/"
    file_url = urljoin(public_page, httpx.get(public_page, headers={"Accept": JSON_PAGE}).json()["files"][0]["url"])
    for url in (private.server.index, public_page, file_url):
        r = httpx.request(method, url)
        assert r.status_code == 200, f"{method} {url}: {r.status_code} {r.text}"
        assert "private" not in r.headers.get("cache-control", "")
    assert httpx.get(file_url).content == private.wheel


def installed(venv: Path, env: dict[str, str]) -> dict[str, str]:
    out = run(
        [str(uv_bin()), "pip", "list", "--python", str(venv / "bin" / "python"), "--format", "freeze"], env
    ).stdout
    return dict(line.split("==") for line in out.split())


def write_netrc(env: dict[str, str], token: str) -> None:
    netrc = Path(env["NETRC"])
    netrc.write_text(f"machine 127.0.0.1 login __token__ password {token}\n")
    netrc.chmod(0o600)


def uv_install(venv: Path, index: str, *args: str) -> list[str]:
    return [str(uv_bin()), "pip", "install", "--python", str(venv / "bin" / "python"), "--index-url", index, *args]


def test_pip_installs_with_netrc(private: Private, venv: Path, client_env: dict[str, str]) -> None:
    write_netrc(client_env, private.tokens["private"])
    run(pip(venv, "install", "--no-input", "--index-url", private.index, PROJECT), client_env)
    assert installed(venv, client_env) == {PROJECT: "1.0"}


def test_uv_installs_with_netrc(private: Private, venv: Path, client_env: dict[str, str]) -> None:
    write_netrc(client_env, private.tokens["private"])
    run(uv_install(venv, private.index, PROJECT), client_env)
    assert installed(venv, client_env) == {PROJECT: "1.0"}


def test_pip_without_credentials_fails_with_401(private: Private, venv: Path, client_env: dict[str, str]) -> None:
    # pip logs why it skipped an index page only at debug level (-vv); the reason phrase is the server's message.
    args = pip(venv, "install", "-vv", "--no-input", "--index-url", private.index, PROJECT)
    result = run(args, client_env, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "401 Client Error: Authentication required" in output, output[-3000:]
    assert installed(venv, client_env) == {}


def test_uv_without_credentials_fails_with_401(private: Private, venv: Path, client_env: dict[str, str]) -> None:
    result = run(uv_install(venv, private.index, PROJECT), client_env, check=False)
    assert result.returncode != 0
    assert "401" in result.stderr, result.stderr
    assert installed(venv, client_env) == {}


def test_uv_with_a_revoked_token_fails(private: Private, venv: Path, client_env: dict[str, str]) -> None:
    write_netrc(client_env, private.tokens["revoked"])
    result = run(uv_install(venv, private.index, PROJECT), client_env, check=False)
    assert result.returncode != 0
    assert "401" in result.stderr, result.stderr


def test_token_list_shows_states(private: Private) -> None:
    rows = token_rows(private.server)
    assert rows[REVOKED][-1] == "revoked"
    assert rows[EXPIRED][-1] == "expired"
    for grant in GRANTS.values():
        row = rows[f"test {' '.join(grant)}"]
        assert row[-1] == "active"
        assert row[-2] == "never"
    assert "repos=private" in rows[REVOKED]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--scope", "repos:write", "--repos", "private"), "Scope 'repos:write' is not known; use one of:"),
        (("--scope", "repos:read", "--repos", "private", "--expires", "soon"), "Expiry 'soon' is not valid"),
    ],
    ids=["unknown-scope", "bad-expiry"],
)
def test_token_create_rejects_bad_arguments(private: Private, args: tuple[str, ...], message: str) -> None:
    result = private.server.cli("token", "create", "--description", "rejected-token", *args, check=False)
    assert result.returncode == 1
    assert result.stdout == "", "no token may be printed"
    assert message in flat(result.stderr)
    assert flat(after_data_dir(result.stderr)).startswith("error:")
    db = Database(load_settings(private.server.data_dir).database_url)
    try:
        with db.session() as session:
            assert session.scalar(select(Token).where(Token.description == "rejected-token")) is None
    finally:
        db.dispose()


@pytest.mark.parametrize("path", ["/__api__/device", "/__api__/device_access"])
def test_device_flow_without_single_sign_on(private: Private, path: str) -> None:
    """posit-keyring pointed at a server without `[oidc]`: a 404 saying what to configure, in OAuth's JSON and in
    the reason phrase, which is all posit-keyring prints."""
    answer = httpx.post(f"{private.server.url}{path}", data={"code_challenge_method": "S256", "code_challenge": "x"})
    assert answer.status_code == 404
    assert answer.json()["error"] == "invalid_request"
    message = answer.json()["error_description"]
    assert message.startswith("Single sign-on is not configured on this server")
    assert "`issuer`, `client_id` and `client_secret` in the `[oidc]` section of packyard.toml" in message
    assert answer.reason_phrase == message.replace("`", "")
