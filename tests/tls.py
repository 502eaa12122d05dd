"""A certificate authority made in the tests (trustme) and a Packyard serving HTTPS with a certificate it issued.

Reuse `test_ca` for any client that must trust the test servers (its `pem` is the CA certificate clients are
given: pip's `--cert`, `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`, rsconnect's `--cacert`, R's `CURL_CA_BUNDLE`), and
`tls_env(test_ca)` for a server of `tests/conftest.py`'s `_start` that serves HTTPS and trusts that CA."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.conftest import Server, _start


@dataclass(frozen=True)
class TestCA:
    """The CA's certificate (`pem`) and a server certificate it issued for 127.0.0.1 and localhost."""

    __test__ = False  # not a test class, whatever its name

    pem: Path
    certificate: Path  # the server's certificate, its chain after it
    key: Path
    ca: trustme.CA


def make_ca(folder: Path) -> TestCA:
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Packyard test CA")
    issued = ca.issue_cert("127.0.0.1", "localhost")
    made = TestCA(folder / "ca.pem", folder / "server.pem", folder / "server.key", ca)
    ca.cert_pem.write_to_path(str(made.pem))
    made.certificate.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(made.key))
    return made


def tls_env(ca: TestCA) -> dict[str, str]:
    """`PACKYARD_*` overrides for `_start`: serve HTTPS with the CA's certificate, and trust the CA as a client."""
    return {
        "PACKYARD_SERVER_TLS_CERTIFICATE": str(ca.certificate),
        "PACKYARD_SERVER_TLS_KEY": str(ca.key),
        "PACKYARD_SERVER_CA_BUNDLE": str(ca.pem),
    }


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """One test CA per pytest process; its files stay for the session."""
    return make_ca(tmp_path_factory.mktemp("test-ca"))


@pytest.fixture(scope="module")
def https_server(test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A Packyard on SQLite serving HTTPS at `https://127.0.0.1:<port>` with a certificate of `test_ca`."""
    server = _start(tmp_path_factory.mktemp("packyard-https"), "", tls_env(test_ca))
    try:
        yield server
    finally:
        server.stop()
