"""TLS settings checked before `packyard run` serves, and what the mirror says of an untrusted upstream."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from packyard.config import load_settings
from packyard.errors import ConfigError
from packyard.tls import check_server_tls, client_context, describe_failure, uvicorn_options
from tests.tls import TestCA, make_ca


def test_a_good_certificate_and_bundle_pass_and_reach_uvicorn(tmp_path: Path, test_ca: TestCA) -> None:
    settings = load_settings(
        tmp_path,
        environ={
            "PACKYARD_SERVER_TLS_CERTIFICATE": str(test_ca.certificate),
            "PACKYARD_SERVER_TLS_KEY": str(test_ca.key),
            "PACKYARD_SERVER_CA_BUNDLE": str(test_ca.pem),
        },
    )
    check_server_tls(settings)
    assert uvicorn_options(settings) == {"ssl_certfile": str(test_ca.certificate), "ssl_keyfile": str(test_ca.key)}
    assert uvicorn_options(load_settings(tmp_path, environ={})) == {}


def test_a_key_of_another_certificate_is_refused(tmp_path: Path, test_ca: TestCA) -> None:
    other = make_ca(tmp_path / "other")
    environ = {"PACKYARD_SERVER_TLS_CERTIFICATE": str(test_ca.certificate), "PACKYARD_SERVER_TLS_KEY": str(other.key)}
    with pytest.raises(ConfigError, match="does not match the certificate") as error:
        check_server_tls(load_settings(tmp_path, environ=environ))
    assert str(other.key) in str(error.value) and str(tmp_path.resolve() / "packyard.toml") in str(error.value)


def test_a_bundle_without_certificates_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        check_server_tls(load_settings(tmp_path, environ={"PACKYARD_SERVER_CA_BUNDLE": str(bundle)}))
    with pytest.raises(ConfigError, match="which is not a file"):
        check_server_tls(load_settings(tmp_path, environ={"PACKYARD_SERVER_CA_BUNDLE": str(tmp_path / "none")}))


def test_the_system_store_is_the_default_trust() -> None:
    assert client_context("").get_ca_certs()  # the system's roots, or certifi's


def test_an_untrusted_certificate_names_ca_bundle() -> None:
    failure = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    assert "`[server] ca_bundle`" in describe_failure(failure)
    assert describe_failure(TimeoutError()) == "TimeoutError"
