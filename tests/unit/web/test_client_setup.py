"""The setup page's text without a server: index URLs, the netrc machine, and which sections a repository gets."""

from __future__ import annotations

import pytest

from packyard.web.client_setup import index_url, netrc_machine, sections


@pytest.mark.parametrize(
    ("address", "url", "machine"),
    [
        ("http://127.0.0.1:4242", "http://127.0.0.1:4242/pypi/latest/simple/", "127.0.0.1"),
        (
            "https://pkgs.example.com:8443/packyard/",
            "https://pkgs.example.com:8443/packyard/pypi/latest/simple/",
            "pkgs.example.com",
        ),  # fmt: skip
    ],
)
def test_index_url_and_netrc_machine(address: str, url: str, machine: str) -> None:
    assert index_url(address, "pypi", "latest") == url
    assert netrc_machine(address) == machine


def test_only_authenticated_repositories_get_a_netrc_section_and_https_needs_no_trusted_host() -> None:
    public = sections("https://pkgs.example.com", "pypi", "2026-01-02", authenticated=False)
    assert "netrc" not in [s.id for s in public]
    snippets = {snippet.id: snippet.text for s in public for snippet in s.snippets}
    assert snippets["setup-pip-conf"] == "[global]\nindex-url = https://pkgs.example.com/pypi/2026-01-02/simple/\n"
    private = sections("https://pkgs.example.com", "team", "latest", authenticated=True, package="x")
    assert private[0].id == "netrc"
    assert private[0].snippets[0].text == "machine pkgs.example.com\nlogin __token__\npassword YOUR_TOKEN\n"


def test_https_servers_get_the_ca_settings_of_every_client() -> None:
    assert "tls" not in [s.id for s in sections("https://pkgs.example.com", "pypi", "latest", authenticated=False)]
    tls = sections("https://pkgs.example.com", "pypi", "latest", authenticated=False, package="x", tls=True)
    assert tls[0].id == "tls"
    text = "\n".join(f"{snippet.text}\n{snippet.note}" for snippet in tls[0].snippets)
    for setting in ("UV_NATIVE_TLS=true", "--native-tls", "cert = /path/to/ca.pem", "PIP_CERT=", "REQUESTS_CA_BUNDLE=",
                    "--cacert /path/to/ca.pem", "CURL_CA_BUNDLE=/path/to/ca.pem"):  # fmt: skip
        assert setting in text, setting
    assert "UnknownIssuer" in tls[0].intro
