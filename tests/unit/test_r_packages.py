"""R's DESCRIPTION format, names and versions as R orders them, PACKAGES as R reads it, and the setup snippets."""

from __future__ import annotations

import pytest

from packyard.repository.cran import description
from packyard.repository.errors import UploadRejected
from packyard.web import client_setup


def test_description_joins_continuation_lines() -> None:
    raw = b"Package: pkg\nVersion: 1.0-2\nDescription: One\n    two\n\tthree.\nImports: a,\n  b (>= 1.0)\n"
    fields = description.parse(raw, "pkg/DESCRIPTION")
    assert fields["Description"] == "One\ntwo\nthree."
    assert description.one_line(fields["Imports"]) == "a, b (>= 1.0)"


@pytest.mark.parametrize("raw", [b" starts with a continuation\n", b"Package pkg\n"])
def test_description_refuses_what_is_not_dcf(raw: bytes) -> None:
    with pytest.raises(UploadRejected, match="pkg/DESCRIPTION"):
        description.parse(raw, "pkg/DESCRIPTION")


def test_names_and_versions() -> None:
    assert description.is_valid_name("data.table") and description.is_valid_name("R6")
    for bad in ("a", "1pkg", "pkg.", "my_pkg", "my-pkg"):
        assert not description.is_valid_name(bad), bad
    assert description.is_valid_version("1.0-2") and not description.is_valid_version("1")
    assert not description.is_valid_version("1.0a")
    versions = ["1.0-10", "1.0-9", "1.0.1", "0.99", "1.0"]
    assert sorted(versions, key=description.version_key) == ["0.99", "1.0", "1.0.1", "1.0-9", "1.0-10"]


def test_setup_snippets_of_an_authenticated_r_repository() -> None:
    sections = client_setup.r_sections("https://pkg.example.com:8443", "cran-private", "latest", True, "mypkg")
    snippets = {s.id: s.text for section in sections for s in section.snippets}
    assert snippets["setup-r-netrc"] == "machine pkg.example.com\nlogin __token__\npassword YOUR_TOKEN\n"
    assert snippets["setup-r-curlrc"] == "--netrc-file /etc/netrc\n"
    assert snippets["setup-r-profile"] == (
        'options(download.file.method = "curl")\n'
        'options(repos = c(CRAN_PRIVATE = "https://pkg.example.com:8443/cran-private/latest"))\n'
    )
    assert snippets["setup-r-install"].endswith('install.packages("mypkg")')
