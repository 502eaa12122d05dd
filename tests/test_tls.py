"""HTTPS with a certificate authority made in the tests (tests/tls.py): pip, uv, twine, `uv publish` and rsconnect
against an HTTPS Packyard, uv's `UnknownIssuer` without the CA, a mirror of an HTTPS upstream with and without
`[server] ca_bundle`, a deploy that builds from the HTTPS index, workers serving HTTPS, and bad TLS settings."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path

import certifi
import httpx
import pytest

from tests.conftest import BIN, Server, _start, fresh_database, pip, run, stop_process, uv_bin
from tests.dists import make_wheel
from tests.publishing import copy_app, publishing_server, setup_publishing
from tests.tls import TestCA, tls_env

UNKNOWN_ISSUER = "invalid peer certificate: UnknownIssuer"
# What may point a client at a CA bundle. requests lets CURL_CA_BUNDLE override pip's own `--cert`.
_CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(scope="module")
def uploaded(https_server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A project uploaded to the HTTPS server by twine, which trusts the test CA through REQUESTS_CA_BUNDLE."""
    wheel = make_wheel(tmp_path_factory.mktemp("dists"), "tls-lib", "1.0")
    result = https_server.twine(wheel)
    assert "https://127.0.0.1" in result.stdout + result.stderr
    return "tls-lib"


def _clean(env: dict[str, str]) -> dict[str, str]:
    """`env` without any CA setting this machine may carry: each test says what the client trusts."""
    return {k: v for k, v in env.items() if k not in _CA_VARIABLES}


def test_address_follows_https(https_server: Server) -> None:
    assert https_server.url.startswith("https://")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{https_server.url}/__ping__")
    trusted = ssl.create_default_context(cafile=https_server.ca_pem)
    assert httpx.get(https_server.index, verify=trusted).status_code == 200
    assert "Packyard listening on https://127.0.0.1:" in https_server.log()


def test_setup_page_shows_the_ca_settings(https_server: Server) -> None:
    trusted = ssl.create_default_context(cafile=https_server.ca_pem)
    page = httpx.get(f"{https_server.url}/repos/pypi/setup", verify=trusted, follow_redirects=True)
    assert page.status_code == 200, page.text
    for setting in ("UV_NATIVE_TLS=true", "--native-tls", "cert = /path/to/ca.pem", "REQUESTS_CA_BUNDLE", "--cacert"):
        assert setting in page.text, setting
    assert f"{https_server.url}/pypi/latest/simple/" in page.text


def test_pip_installs_with_cert(
    https_server: Server, uploaded: str, test_ca: TestCA, venv: Path, client_env: dict[str, str]
) -> None:
    env = _clean(client_env)
    refused = run(pip(venv, "install", "--retries", "0", "--index-url", https_server.index, uploaded), env, check=False)
    assert refused.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.stdout + refused.stderr
    run(pip(venv, "install", "--cert", str(test_ca.pem), "--index-url", https_server.index, uploaded), env)


def test_uv_needs_the_ca_and_trusts_it_by_native_tls_or_ssl_cert_file(
    https_server: Server, uploaded: str, test_ca: TestCA, tmp_path: Path, client_env: dict[str, str]
) -> None:
    env = _clean(client_env)
    install = [str(uv_bin()), "pip", "install", "--index-url", https_server.index, uploaded, "--python"]
    env_path = tmp_path / "env"
    run([str(uv_bin()), "venv", "-q", str(env_path)], env)
    refused = run([*install, str(env_path)], env, check=False)
    assert refused.returncode != 0
    assert UNKNOWN_ISSUER in refused.stderr, refused.stderr  # the seed's message
    # The CA added to a system-like store (the public roots plus it), which uv reads with UV_NATIVE_TLS.
    store = tmp_path / "ca-certificates.crt"
    store.write_bytes(Path(certifi.where()).read_bytes() + test_ca.pem.read_bytes())
    native = {**env, "UV_NATIVE_TLS": "true", "SSL_CERT_FILE": str(store)}
    assert "+ tls-lib==1.0" in run([*install, str(env_path)], native).stderr
    run([str(uv_bin()), "pip", "uninstall", "--python", str(env_path), uploaded], env)
    trusted = run([*install, str(env_path)], {**env, "SSL_CERT_FILE": str(test_ca.pem)})
    assert "+ tls-lib==1.0" in trusted.stderr


def test_uv_publish_over_https(
    https_server: Server, test_ca: TestCA, tmp_path: Path, client_env: dict[str, str]
) -> None:
    wheel = make_wheel(tmp_path, "tls-published", "1.0")
    command = [str(uv_bin()), "publish", "--publish-url", https_server.upload_url, "--token", https_server.upload_token]
    refused = run([*command, str(wheel)], _clean(client_env), check=False)
    assert refused.returncode != 0 and UNKNOWN_ISSUER in refused.stderr, refused.stderr
    run([*command, "--check-url", https_server.index, str(wheel)], {**client_env, "SSL_CERT_FILE": str(test_ca.pem)})
    page = httpx.get(f"{https_server.index}tls-published/", verify=ssl.create_default_context(cafile=test_ca.pem))
    assert "tls_published-1.0-py3-none-any.whl" in page.text


def test_twine_with_cert(https_server: Server, test_ca: TestCA, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "tls-twined", "1.0")
    command = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
    command += ["--repository-url", https_server.upload_url, "-u", "__token__", "-p", https_server.upload_token]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1"}
    refused = run([*command, str(wheel)], env, check=False)
    assert refused.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.stdout + refused.stderr
    run([*command, "--cert", str(test_ca.pem), str(wheel)], env)


def test_mirror_of_an_https_upstream_trusts_ca_bundle(
    https_server: Server, uploaded: str, test_ca: TestCA, tmp_path: Path
) -> None:
    upstream = {"PACKYARD_MIRROR_UPSTREAM": https_server.index}
    untrusting = _start(tmp_path / "untrusting", "", upstream)
    trusting = _start(tmp_path / "trusting", "", {**upstream, "PACKYARD_SERVER_CA_BUNDLE": str(test_ca.pem)})
    try:
        refused = httpx.get(f"{untrusting.index}{uploaded}/", timeout=30)
        assert refused.status_code == 502
        assert "CERTIFICATE_VERIFY_FAILED" in refused.text and "`[server] ca_bundle`" in refused.text, refused.text
        served = httpx.get(f"{trusting.index}{uploaded}/", timeout=30)
        assert served.status_code == 200 and "tls_lib-1.0-py3-none-any.whl" in served.text
    finally:
        untrusting.stop()
        trusting.stop()


def test_rsconnect_deploys_with_cacert_and_builds_from_the_https_index_trusting_ca_bundle(
    test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with publishing_server("sqlite", tmp_path_factory.mktemp("packyard-https-publishing"), tls_env(test_ca)) as server:
        pub = setup_publishing(server, tmp_path_factory.mktemp("publisher-home"))  # `rsconnect add --cacert`
        app = copy_app("fastapi-app", tmp_path_factory.mktemp("apps"))
        result = pub.deploy("fastapi", app)
        output = result.stdout + result.stderr
        assert "Deployment completed successfully." in output
        assert f"{server.url}/pypi/latest/simple/" in output  # uv, in the sandbox, trusted the server's index
        guid = pub.record(app)["app_guid"]
        assert pub.get(f"/content/{guid}/").json() == {"app": "fastapi", "version": 1}
        # Without `ca_bundle` the server's uv trusts its own roots only: a new environment cannot be built, and the
        # deploy log says which setting to change.
        del server.env["PACKYARD_SERVER_CA_BUNDLE"]
        server.restart()
        refused = pub.deploy("flask", copy_app("flask-app", tmp_path_factory.mktemp("apps")), check=False)
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0 and UNKNOWN_ISSUER in output, output
        assert "set `[server] ca_bundle` in packyard.toml" in " ".join(output.split()), output


def test_workers_serve_https(test_ca: TestCA, tmp_path: Path) -> None:
    with fresh_database("postgresql") as url:
        server = _start(tmp_path / "workers", url, {**tls_env(test_ca), "PACKYARD_SERVER_WORKERS": "2"})
        try:
            trusted = ssl.create_default_context(cafile=test_ca.pem)
            answers = {httpx.get(f"{server.url}/__ping__", verify=trusted).status_code for _ in range(6)}
            assert answers == {200}
        finally:
            server.stop()


def _run_fails(data_dir: Path, env: dict[str, str]) -> str:
    """What `packyard run` says on stderr when it refuses to start."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "packyard.toml").write_text("[server]\nport = 1\n")  # never bound: TLS is checked first
    full = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300", **env}
    process = subprocess.Popen(
        [str(BIN / "packyard"), "run", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
    )
    try:
        _out, err = process.communicate(timeout=60)
    finally:
        stop_process(process)
    assert process.returncode != 0, err
    return " ".join(err.split())


def test_bad_tls_settings_stop_the_start_with_the_fix(test_ca: TestCA, tmp_path: Path) -> None:
    config = str(tmp_path / "a" / "packyard.toml")
    only = _run_fails(tmp_path / "a", {"PACKYARD_SERVER_TLS_CERTIFICATE": str(test_ca.certificate)})
    assert "`server.tls_key` is not" in only and config in only
    missing = _run_fails(
        tmp_path / "b",
        {"PACKYARD_SERVER_TLS_CERTIFICATE": str(tmp_path / "nope.pem"), "PACKYARD_SERVER_TLS_KEY": str(test_ca.key)},
    )
    assert f"'{tmp_path / 'nope.pem'}', which is not a file" in missing and "packyard.toml" in missing
    # A key that does not match, and other bad files: tests/unit/test_tls.py.
