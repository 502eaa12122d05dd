"""pip and uv through single sign-on: the real posit-keyring 0.3.2 runs the device flow against Packyard
(`/__api__/device`, `/__api__/device_access`), which relays it to a real OpenID provider (tests/idp.py); the test
approves the user code there as a person would, and Packyard exchanges the ID token (`/__api__/token`) for a token
that reads the authenticated repositories the person's groups may read. Then the refusals: a bad PKCE verifier,
an unknown device code, a person whose groups read nothing, and expired or revoked tokens at the server root,
which posit-keyring's liveness check reads."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import httpx
import jwt
import pytest

from tests.conftest import BIN, ROOT, Server, _start, free_port, fresh_database, run
from tests.dists import make_wheel
from tests.idp import CLIENT_ID, CLIENT_SECRET, IdP, identity_provider

REPO = "analytics"
PROJECT = "sso-pkg"
UV = ROOT / ".cache" / "uv-0.13.9" / "bin" / "uv"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"


@dataclass
class Sso:
    server: Server
    idp: IdP
    tmp: Path
    index: str
    wheel: Path
    approvals: list[str] = field(default_factory=list)

    def requests(self, path: str) -> int:
        """How many requests for `path` the server's access log has seen so far."""
        return len(re.findall(rf'"(?:GET|POST|HEAD) {re.escape(path)}(?:\?[^ ]*)? HTTP', self.server.log()))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sso(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sso]:
    tmp = tmp_path_factory.mktemp(f"sso-{request.param}")
    port = free_port()
    with (
        identity_provider(tmp, [f"http://127.0.0.1:{port}/login/oidc/callback"]) as idp,
        fresh_database(request.param) as database_url,
    ):
        env = {
            "PACKYARD_OIDC_ISSUER": idp.issuer,
            "PACKYARD_OIDC_CLIENT_ID": CLIENT_ID,
            "PACKYARD_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "PACKYARD_OIDC_ADMIN_GROUPS": "packyard-admins",
        }
        server = _start(tmp / "data", database_url, env=env, port=port)
        try:
            server.cli("repo", "create", "--name", REPO, "--authenticated")
            server.cli("repo", "subscribe", "--repo", REPO, "--source", "local-python-src")
            server.cli("repo", "edit", "--name", REPO, "--groups", "analysts,data-eng")
            server.cli("repo", "create", "--name", "finance", "--authenticated")  # no reader groups
            wheel = make_wheel(tmp / "dist", PROJECT, "1.0", payload=b"SECRET = 42\n")
            server.twine(wheel)
            server.wait_synced()
            yield Sso(server, idp, tmp, f"{server.url}/{REPO}/latest/simple/", wheel)
        finally:
            server.stop()


def keyring_env(sso: Sso, home: Path, **extra: str) -> dict[str, str]:
    """The seed's setup for pip and uv: PACKAGEMANAGER_ADDRESS and an index URL with user `__token__`, keyring
    from this virtual environment (posit-keyring is its only backend that answers), a home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "PYTHON_KEYRING", "PACKAGEMANAGER"))}
    host = sso.server.url.removeprefix("http://")
    env.update(
        HOME=str(home),
        PATH=f"{BIN}:/usr/bin:/bin",
        BROWSER="true",
        NO_COLOR="1",
        NETRC=str(home / ".netrc"),
        PACKAGEMANAGER_ADDRESS=sso.server.url,
        PIP_INDEX_URL=f"http://__token__@{host}/{REPO}/latest/simple/",
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        UV_INDEX_URL=f"http://__token__@{host}/{REPO}/latest/simple/",
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(home / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",
        **extra,
    )
    return env


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    user_codes: list[str]


def run_approving(sso: Sso, args: list[str], env: dict[str, str], user: str | None) -> Run:
    """Run a client; whenever posit-keyring prints a user code on stderr, approve it at the provider as `user`
    (None: approve nothing, the run must not need it)."""
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    codes: list[str] = []
    out: list[str] = []

    def approve() -> None:
        assert process.stderr is not None
        expecting = False
        for line in process.stderr:
            lines.append(line)
            if "enter the following code" in line:
                expecting = True
            elif expecting and line.strip():
                expecting = False
                codes.append(line.strip())
                if user is not None:
                    answer = sso.idp.approve_device(line.strip(), user)
                    assert answer.status_code == 200, answer.text

    def read_out() -> None:
        assert process.stdout is not None
        out.append(process.stdout.read())

    threads = [threading.Thread(target=approve), threading.Thread(target=read_out)]
    for thread in threads:
        thread.start()
    try:
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        for thread in threads:
            thread.join(30)
    return Run(process.returncode, "".join(out), "".join(lines), codes)


def saved_token(home: Path, address: str) -> str:
    data = tomllib.loads((home / ".ppm" / "tokens.toml").read_text())
    (entry,) = [c for c in data["connections"] if c["address"] == address]
    assert entry["auth_type"] == "sso"
    return str(entry["token"])


def basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)[:43]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def id_token_for(sso: Sso, user: str) -> str:
    """An ID token of `user` from the provider, through Packyard's device endpoints (as posit-keyring gets one)."""
    verifier, challenge = pkce()
    started = httpx.post(
        f"{sso.server.url}/__api__/device", data={"code_challenge_method": "S256", "code_challenge": challenge}
    )
    assert started.status_code == 200, started.text
    device = started.json()
    pending = httpx.post(
        f"{sso.server.url}/__api__/device_access",
        data={"device_code": device["device_code"], "code_verifier": verifier},
    )
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending"), pending.text
    assert sso.idp.approve_device(device["user_code"], user).status_code == 200
    done = httpx.post(
        f"{sso.server.url}/__api__/device_access",
        data={"device_code": device["device_code"], "code_verifier": verifier},
    )
    assert done.status_code == 200, done.text
    assert list(done.json()) == ["id_token"]
    return str(done.json()["id_token"])


def test_device_endpoints_answer_as_posit_keyring_reads_them(sso: Sso) -> None:
    verifier, challenge = pkce()
    started = httpx.post(
        f"{sso.server.url}/__api__/device", data={"code_challenge_method": "S256", "code_challenge": challenge}
    )
    assert started.status_code == 200, started.text
    device = started.json()
    assert {"device_code", "user_code", "verification_uri", "expires_in", "interval"} <= set(device)
    assert device["verification_uri"].startswith(sso.idp.issuer)
    assert device["verification_uri_complete"] == f"{device['verification_uri']}?user_code={device['user_code']}"
    assert isinstance(device["interval"], int) and 0 < device["expires_in"] <= 300

    # A poll with another verifier is refused, and the request stays for the right one.
    wrong = httpx.post(
        f"{sso.server.url}/__api__/device_access",
        data={"device_code": device["device_code"], "code_verifier": pkce()[0]},
    )
    assert wrong.status_code == 400
    assert wrong.json() == {
        "error": "invalid_grant",
        "error_description": "The `code_verifier` does not match the `code_challenge` this device sign-in started "
        "with (PKCE S256).",
    }
    unknown = httpx.post(
        f"{sso.server.url}/__api__/device_access", data={"device_code": "no-such-code", "code_verifier": verifier}
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "expired_token"
    assert "unknown or has expired" in unknown.json()["error_description"]
    pending = httpx.post(
        f"{sso.server.url}/__api__/device_access",
        data={"device_code": device["device_code"], "code_verifier": verifier},
    )
    assert pending.status_code == 400
    assert pending.json()["error"] == "authorization_pending"


@pytest.mark.parametrize(
    ("form", "fragment"),
    [
        ({"code_challenge_method": "plain", "code_challenge": "x" * 43}, "`code_challenge_method` is 'plain'"),
        ({"code_challenge_method": "S256"}, "`code_challenge` is ''"),
        ({"code_challenge_method": "S256", "code_challenge": "short"}, "`code_challenge` is 'short'"),
        ({}, "`code_challenge_method` is ''"),
    ],
    ids=["plain", "no-challenge", "short-challenge", "empty"],
)
def test_device_start_refuses_a_bad_challenge(sso: Sso, form: dict[str, str], fragment: str) -> None:
    answer = httpx.post(f"{sso.server.url}/__api__/device", data=form)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert fragment in answer.json()["error_description"]


def test_exchange_gives_a_token_for_the_groups_repositories(sso: Sso) -> None:
    answer = httpx.post(
        f"{sso.server.url}/__api__/token",
        data={"grant_type": TOKEN_EXCHANGE, "subject_token": id_token_for(sso, "omar"), "subject_token_type": ID_TOKEN},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["scopes"] == {"repos:read": [REPO]}
    assert (claims["description"], claims["person"]) == ("omar (single sign-on)", "omar")
    assert 3590 <= claims["exp"] - claims["iat"] <= 3600
    page = httpx.get(sso.index + f"{PROJECT}/", headers=basic(body["access_token"]))
    assert page.status_code == 200 and PROJECT in page.text
    # The server root, posit-keyring's liveness check: a valid token passes.
    root = httpx.get(sso.server.url, headers=basic(body["access_token"]), follow_redirects=True)
    assert root.status_code < 500 and root.status_code not in (401, 403)
    assert "omar (single sign-on)" in sso.server.cli("token", "list").stdout
    # A repository none of omar's groups reads: 403, saying what an administrator and omar would do about it.
    other = httpx.get(f"{sso.server.url}/finance/latest/simple/", headers=basic(body["access_token"]))
    assert other.status_code == 403
    assert other.text == (
        "User `omar` signed in, but none of their groups reads repo `finance`; an administrator can let one read it "
        "(`packyard repo edit --name finance --groups GROUP`), and the user then signs in again by removing this "
        "server's entry from `~/.ppm/tokens.toml`.\n"
    )


def test_an_admin_reads_every_repository(sso: Sso) -> None:
    answer = httpx.post(
        f"{sso.server.url}/__api__/token",
        data={"grant_type": TOKEN_EXCHANGE, "subject_token": id_token_for(sso, "ines"), "subject_token_type": ID_TOKEN},
    )
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["scopes"] == {"repos:read": ["*"]}


def test_a_person_whose_groups_read_nothing_is_refused(sso: Sso) -> None:
    answer = httpx.post(
        f"{sso.server.url}/__api__/token",
        data={"grant_type": TOKEN_EXCHANGE, "subject_token": id_token_for(sso, "rita"), "subject_token_type": ID_TOKEN},
    )
    assert answer.status_code == 403
    message = (
        "User `rita` (groups: `sales`) may read no authenticated repository: none lists these groups as readers. An "
        f"administrator can let a group read one with `packyard repo edit --name {REPO} --groups sales`."
    )
    assert answer.json() == {"error": "access_denied", "error_description": message}
    assert answer.reason_phrase == message.replace("`", "")  # what posit-keyring prints: requests' raise_for_status


def test_pip_and_uv_install_through_posit_keyring(sso: Sso, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = keyring_env(sso, home)
    before = sso.requests("/__api__/device")

    # First install: posit-keyring runs the device flow; the person approves the code at the provider. pip imports
    # keyring from its own environment, as after the seed's `pip install posit-keyring`; with pip's `subprocess`
    # provider the prompt would not be seen (pip captures the command's stderr).
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--keyring-provider=import", "--target", str(target), PROJECT]
    first = run_approving(sso, install, env, "omar")
    assert first.returncode == 0, first.stderr
    assert len(first.user_codes) == 1, first.stderr
    assert "Please open the following URL in your browser:" in first.stderr
    assert f"PPM token saved to {home / '.ppm' / 'tokens.toml'}" in first.stderr
    assert f"Successfully installed {PROJECT}-1.0" in first.stdout
    assert (target / "sso_pkg" / "__init__.py").read_text() == "VERSION = '1.0'\nSECRET = 42\n"
    token = saved_token(home, sso.server.url)
    assert jwt.decode(token, options={"verify_signature": False})["scopes"] == {"repos:read": [REPO]}
    assert sso.requests("/__api__/device") == before + 1
    assert (home / ".ppm" / "tokens.toml").stat().st_mode & 0o777 == 0o600

    # Second run: the cached token passes the root check; no device flow, nothing to approve.
    roots = sso.requests("/")
    again = run_approving(sso, [*install, "--upgrade", "--force-reinstall"], env, None)
    assert again.returncode == 0, again.stderr
    assert again.user_codes == []
    assert sso.requests("/__api__/device") == before + 1
    assert sso.requests("/") == roots + 1
    assert saved_token(home, sso.server.url) == token

    # uv runs the `keyring` command (subprocess provider) and gets the cached token.
    uv_env = {**env, "UV_KEYRING_PROVIDER": "subprocess"}
    uv_venv = tmp_path / "uv-venv"
    run([str(UV), "venv", "-q", "--python", sys.executable, str(uv_venv)], uv_env)
    installed = run_approving(sso, [str(UV), "pip", "install", "--python", str(uv_venv), PROJECT], uv_env, None)
    assert installed.returncode == 0, installed.stderr
    assert installed.user_codes == []
    assert f"+ {PROJECT}==1.0" in installed.stderr
    assert sso.requests("/__api__/device") == before + 1


def test_uv_runs_the_device_flow_itself(sso: Sso, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = keyring_env(sso, home, UV_KEYRING_PROVIDER="subprocess")
    venv = tmp_path / "venv"
    run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], env)
    installed = run_approving(sso, [str(UV), "pip", "install", "--python", str(venv), PROJECT], env, "omar")
    assert installed.returncode == 0, installed.stderr
    assert len(installed.user_codes) == 1, installed.stderr
    assert f"+ {PROJECT}==1.0" in installed.stderr
    assert saved_token(home, sso.server.url)


def test_identity_token_file(sso: Sso, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    token_file = tmp_path / "id-token"
    token_file.write_text(id_token_for(sso, "omar") + "\n")
    env = keyring_env(sso, home, PACKAGEMANAGER_IDENTITY_TOKEN_FILE=str(token_file))
    devices, exchanges = sso.requests("/__api__/device"), sso.requests("/__api__/token")
    downloaded = run_approving(
        sso, [sys.executable, "-m", "pip", "download", "--keyring-provider=import", "-d", str(tmp_path / "out"),
              PROJECT], env, None)  # fmt: skip
    assert downloaded.returncode == 0, downloaded.stderr
    assert downloaded.user_codes == []
    assert (tmp_path / "out" / sso.wheel.name).read_bytes() == sso.wheel.read_bytes()
    assert sso.requests("/__api__/token") == exchanges + 1
    assert sso.requests("/__api__/device") == devices
    assert saved_token(home, sso.server.url)


def test_a_revoked_token_is_refused_at_the_root_and_the_flow_runs_again(sso: Sso, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = keyring_env(sso, home)
    download = [sys.executable, "-m", "pip", "download", "--keyring-provider=import", "-d", str(tmp_path / "out")]
    first = run_approving(sso, [*download, PROJECT], env, "omar")
    assert first.returncode == 0, first.stderr
    old = saved_token(home, sso.server.url)
    jti = jwt.decode(old, options={"verify_signature": False})["jti"]
    sso.server.cli("token", "revoke", jti)
    sso.server.wait_synced()

    root = httpx.get(sso.server.url, headers=basic(old))
    assert root.status_code == 401, root.text
    assert "was revoked" in root.text
    bearer = httpx.get(sso.server.url, headers={"Authorization": f"Bearer {old}"})
    assert bearer.status_code == 401

    shutil_rm(tmp_path / "out")
    again = run_approving(sso, [*download, PROJECT], env, "omar")
    assert again.returncode == 0, again.stderr
    assert len(again.user_codes) == 1, again.stderr
    assert saved_token(home, sso.server.url) != old


def shutil_rm(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()


def test_the_root_refuses_expired_and_foreign_tokens_but_serves_pages(sso: Sso) -> None:
    expired = sso.server.cli(
        "token", "create", "-q", "--description", "short", "--scope", "repos:read", "--repos", REPO, "--expires", "1s"
    ).stdout.strip()
    time.sleep(1.5)
    for token in (expired, "garbage", jwt.encode({"aud": "packyard", "jti": "x", "iat": 1}, "other-secret" * 4)):
        for method in ("GET", "HEAD"):
            answer = httpx.request(method, sso.server.url, headers=basic(token))
            assert answer.status_code == 401, (token, answer.text)
            assert answer.headers["www-authenticate"].startswith("Basic ")
    assert "has expired" in httpx.get(sso.server.url, headers=basic(expired)).text
    # A browser (no token) is sent to sign in, as before; so is one behind a proxy that sends its own Basic auth.
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(b"alice:proxy-password").decode()}):
        page = httpx.get(sso.server.url, headers=headers)
        assert (page.status_code, page.headers["location"]) == (303, "/login?next=/"), page.text


def test_files_of_the_repository_need_credentials(sso: Sso) -> None:
    reader = sso.server.token("--scope", "repos:read", "--repos", REPO)
    page = f"{sso.index}{PROJECT}/"
    listed = httpx.get(page, headers={**basic(reader), "Accept": "application/vnd.pypi.simple.v1+json"})
    (entry,) = listed.json()["files"]
    url = urljoin(page, entry["url"])
    assert httpx.head(url, headers=basic(reader)).status_code == 200
    for method in ("GET", "HEAD"):
        answer = httpx.request(method, url)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Basic ")


def deny_device(idp: IdP, user_code: str) -> httpx.Response:
    """Type the user code at the provider and press Abort, as a person who did not start this sign-in would."""
    with httpx.Client(base_url=idp.issuer, follow_redirects=True, timeout=30) as browser:
        page = browser.get("/device", params={"user_code": user_code})
        action = re.search(r'<form[^>]*action="([^"]+)"', page.text)
        xsrf = re.search(r'name="xsrf" value="([^"]+)"', page.text)
        assert action and xsrf, page.text
        return browser.post(action[1], data={"xsrf": xsrf[1], "user_code": user_code, "abort": "yes"})


def test_a_sign_in_refused_at_the_provider_ends_the_flow(sso: Sso, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = keyring_env(sso, home)
    process = subprocess.Popen(
        [str(BIN / "keyring"), "get", sso.index, "__token__"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "enter the following code" in line:
            deny_device(sso.idp, next(process.stderr).strip())
            break
    stdout, rest = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stdout == ""
    assert "Authentication process failed: Access denied by user: End-User aborted interaction" in rest
    assert not (home / ".ppm" / "tokens.toml").exists()


def test_repo_edit_groups(sso: Sso) -> None:
    listed = sso.server.cli("repo", "list").stdout
    assert re.search(rf"^{REPO} +local-python-src +yes +analysts,data-eng +http", listed, re.M), listed
    nothing = sso.server.cli("repo", "edit", "--name", REPO, check=False)
    assert nothing.returncode == 1
    assert "error: Nothing to change for repository `analytics`" in nothing.stderr
    assert "hint: Pass `--authenticated`, `--public` or `--groups`" in nothing.stderr
    bad = sso.server.cli("repo", "edit", "--name", "no-such", "--groups", "x", check=False)
    assert bad.returncode == 1 and "Repository `no-such` does not exist" in bad.stderr
    public = sso.server.cli("repo", "edit", "--name", "pypi", "--groups", "analysts")
    assert "Repository `pypi` is read through single sign-on by `analysts`." in public.stdout
    assert "hint: `pypi` is public, so anyone reads it without signing in" in public.stderr
    cleared = sso.server.cli("repo", "edit", "--name", "pypi", "--groups", "")
    assert "Repository `pypi` is read through single sign-on by no group." in cleared.stdout
    assert re.search(r"^pypi .+ no +- +http", sso.server.cli("repo", "list").stdout, re.M)
