"""The package pages in a real Chromium: find a package, see its versions, files and SIGNED label, read its
description rendered and sanitized, and copy setup snippets from the page into real pip and uv installs, for
`latest` and for a dated snapshot; an authenticated repository stays hidden from anonymous visitors."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import check_accessibility, new_page, screenshot, sign_in, web_user
from tests.conftest import Server, _start, fresh_database, pip, run, uv_bin
from tests.dists import make_wheel
from tests.test_install import installed
from tests.upstreams import backdate

PASSWORD = "correct horse battery"
LONG_AGO = datetime.now(UTC) - timedelta(days=10)
FROZEN = LONG_AGO.date().isoformat()

MARKDOWN = """\
Metadata-Version: 2.1
Name: pagedemo
Version: {version}
Summary: Demo package for the pages
Requires-Python: >=3.9
Requires-Dist: depone>=1
Requires-Dist: absent-dep; extra == "docs"
Project-URL: Source, https://example.com/pagedemo
Project-URL: Sneaky, javascript:alert(1)
Description-Content-Type: text/markdown

# Pagedemo

Some *emphasis* and a [link](https://example.com).

<script>window.pwned = "markdown"</script>
<img src="x" onerror="window.pwned = 'onerror'">
"""

RST = """\
Metadata-Version: 2.1
Name: rstdemo
Version: 2.0
Summary: Restructured text demo about zebrafish
Description-Content-Type: text/x-rst

RST Title
=========

A paragraph with **strong** text and <script>window.pwned = "rst"</script> inline.

`a link <javascript:alert(1)>`_
"""


@dataclass
class Catalog:
    server: Server
    signature: bytes


@pytest.fixture(scope="module")
def gnupg(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Pages <pages@example.com>", "ed25519", "sign"],
        check=True,
        capture_output=True,
        env=env,
    )
    return env


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory, gnupg: dict[str, str]) -> Iterator[Catalog]:
    """pagedemo 0.4 (blocked), 0.5 (yanked), 0.9 (ten days old) and 1.0 (signed); rstdemo, depone; and an
    authenticated repository `private` holding secretpkg."""
    dist = tmp_path_factory.mktemp("dist")
    with fresh_database("sqlite") as url:
        server = _start(tmp_path_factory.mktemp("packyard-web-packages"), url)
        try:
            web_user(server, "vera", "viewer", PASSWORD)
            wheels = [make_wheel(dist, "pagedemo", v, metadata=MARKDOWN.format(version=v)) for v in ("0.4", "0.5")]
            old = make_wheel(dist, "pagedemo", "0.9", metadata=MARKDOWN.format(version="0.9"))
            new = make_wheel(dist, "pagedemo", "1.0", metadata=MARKDOWN.format(version="1.0"))
            subprocess.run(["gpg", "--batch", "--detach-sign", "--armor", str(new)], check=True, env=gnupg)
            signature = new.with_name(new.name + ".asc")
            rst = make_wheel(dist, "rstdemo", "2.0", metadata=RST)
            server.twine(*wheels, old, new, signature, rst, make_wheel(dist, "depone", "1.2"))
            server.cli("yank", "--source", "local-python-src", "--project", "pagedemo", "--version", "0.5",
                       "--reason", "broken build")  # fmt: skip
            server.cli("policy", "block", "pagedemo", "--version", "<0.5", "--reason", "CVE-2026-0001 in 0.4")
            backdate(server, old.name, LONG_AGO)
            for wheel in (*wheels, make_wheel(dist, "depone", "1.2")):
                backdate(server, wheel.name, LONG_AGO - timedelta(days=1))
            server.cli("repo", "rebuild", "--name", "pypi")
            server.cli("source", "create", "--name", "private-src")
            server.cli("repo", "create", "--name", "private", "--authenticated", "--description", "Internal only")
            server.cli("repo", "subscribe", "--repo", "private", "--source", "private-src")
            token = server.token("--scope", "sources:write", "--sources", "private-src")
            server.twine(make_wheel(dist, "secretpkg", "1.0"), source="private-src", token=token)
            server.wait_synced()
            yield Catalog(server, signature.read_bytes())
        finally:
            server.stop()


def copied(page: Page, snippet: str) -> str:
    """Press a snippet's Copy button and read what it put on the clipboard."""
    page.locator(f'button[data-copy="{snippet}"]').click()
    expect(page.locator(f'button[data-copy="{snippet}"]')).to_have_text("Copied")
    text = page.evaluate("navigator.clipboard.readText()")
    assert text == page.locator(f"#{snippet}").text_content()
    return text


def test_find_a_package_and_see_its_files(catalog: Catalog, browser: Browser) -> None:
    server = catalog.server
    page = new_page(browser, server.url)
    page.goto("/repos/")
    repos = page.get_by_role("table")
    expect(repos.get_by_role("link", name="pypi", exact=True)).to_be_visible()
    expect(repos.get_by_role("link", name="private")).to_have_count(0)  # authenticated: not for anonymous visitors
    screenshot(page, "packages-repositories")
    check_accessibility(page)

    repos.get_by_role("link", name="pypi", exact=True).click()
    page.get_by_label("Search packages by name or summary").fill("zebrafish")  # a word of rstdemo's summary
    page.get_by_role("button", name="Search").click()
    results = page.locator(".project-list li")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("rstdemo")
    page.get_by_label("Search packages by name or summary").fill("PageDemo")
    page.get_by_role("button", name="Search").click()
    expect(results.first.get_by_role("link")).to_have_text("pagedemo")
    expect(results.first).to_contain_text("1.0")
    expect(results.first).to_contain_text("Demo package for the pages")
    screenshot(page, "packages-search")
    check_accessibility(page)

    results.first.get_by_role("link", name="pagedemo").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("pagedemo 1.0")
    signed = page.get_by_role("link", name="Signed: OpenPGP signature of pagedemo-1.0-py3-none-any.whl")
    expect(signed).to_be_visible()
    expect(signed).to_have_css("color", "rgb(17, 99, 41)")  # the green label
    assert signed.inner_text() == "SIGNED"
    asc = page.request.get(signed.get_attribute("href") or "")
    assert asc.status == 200 and asc.body() == catalog.signature
    wheel_link = page.get_by_role("link", name="pagedemo-1.0-py3-none-any.whl", exact=True)
    wheel = page.request.get(wheel_link.get_attribute("href") or "")
    assert wheel.status == 200
    hashes = page.locator("details.hashes").first
    hashes.locator("summary").click()
    expect(hashes).to_contain_text(hashlib.sha256(wheel.body()).hexdigest())
    expect(hashes).to_contain_text("BLAKE2b-256")

    versions = page.locator("ol.version-list li")
    expect(versions).to_have_count(4)  # newest first
    assert [v.split()[0] for v in versions.all_inner_texts()] == ["1.0", "0.9", "0.5", "0.4"]
    expect(versions.nth(2)).to_contain_text("broken build")
    expect(versions.nth(2).locator(".label-yanked")).to_be_visible()
    expect(versions.nth(3)).to_contain_text("CVE-2026-0001 in 0.4")
    expect(versions.nth(3).locator(".label-blocked")).to_be_visible()

    description = page.locator(".description")
    expect(description.get_by_role("heading", name="Pagedemo")).to_be_visible()
    expect(description.locator("em")).to_have_text("emphasis")
    assert description.locator("script").count() == 0
    assert description.locator("[onerror]").count() == 0
    assert page.evaluate("window.pwned") is None
    expect(page.get_by_role("link", name="Source", exact=True)).to_have_attribute(
        "href", "https://example.com/pagedemo"
    )
    expect(page.get_by_role("link", name="Sneaky")).to_have_count(0)  # javascript: URLs are never links
    expect(page.get_by_text("absent-dep")).to_contain_text("absent-dep")
    screenshot(page, "packages-project")
    check_accessibility(page)

    page.get_by_role("link", name="0.4", exact=True).click()
    expect(page.locator(".notice-error")).to_contain_text("CVE-2026-0001 in 0.4")
    expect(page.get_by_role("link", name="pagedemo-0.4-py3-none-any.whl")).to_have_count(0)  # blocked: 403
    page.get_by_role("link", name="depone>=1").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("depone 1.2")
    page.context.close()


def test_restructured_text_is_rendered_and_sanitized(catalog: Catalog, browser: Browser) -> None:
    page = new_page(browser, catalog.server.url, width=360, height=740)
    page.goto("/repos/pypi/packages/rstdemo/")
    description = page.locator(".description")
    expect(description.get_by_role("heading", name="RST Title")).to_be_visible()
    expect(description.locator("strong")).to_have_text("strong")
    assert description.locator("script").count() == 0
    assert description.locator('a[href^="javascript"]').count() == 0
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # fits a phone
    screenshot(page, "packages-project-phone")
    check_accessibility(page)
    page.context.close()


def test_setup_snippets_install_with_pip_and_uv(
    catalog: Catalog, browser: Browser, tmp_path: Path, client_env: dict[str, str], venv: Path
) -> None:
    server = catalog.server
    page = new_page(browser, server.url)
    page.goto("/repos/pypi/packages/pagedemo/")
    page.get_by_role("link", name="setup page").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up pip and uv for pypi")
    latest = f"{server.url}/pypi/latest/simple/"
    assert copied(page, "setup-url") == latest
    screenshot(page, "packages-setup")
    check_accessibility(page)

    # pip.conf, as the page shows it, makes pip install the latest version.
    conf = tmp_path / "pip.conf"
    conf.write_text(copied(page, "setup-pip-conf"))
    run(pip(venv, "install", "pagedemo"), {**client_env, "PIP_CONFIG_FILE": str(conf)})
    assert installed(venv, client_env)["pagedemo"] == "1.0"

    # The calendar: the days with changes are listed, and the date field freezes the URL to one of them.
    expect(page.locator(".day-list").get_by_role("link", name=FROZEN)).to_have_count(1)
    page.get_by_label("Snapshot date").fill(FROZEN)
    page.get_by_role("button", name="Use this date").click()
    assert f"date={FROZEN}" in page.url
    frozen = f"{server.url}/pypi/{FROZEN}/simple/"
    assert copied(page, "setup-url") == frozen
    screenshot(page, "packages-setup-dated")
    check_accessibility(page)

    # requirements.txt with its --index-url line: pip installs what the repository had that day.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(copied(page, "setup-requirements"))
    assert requirements.read_text().splitlines() == [f"--index-url {frozen}", "pagedemo"]
    run(pip(venv, "install", "--force-reinstall", "-r", str(requirements)), client_env)
    assert installed(venv, client_env)["pagedemo"] == "0.9"

    # The environment variables, in a real shell, then uv.
    exports = copied(page, "setup-env")
    script = f"{exports}\n{shlex.quote(str(uv_bin()))} pip install --python {venv}/bin/python --reinstall pagedemo==0.9"
    run(["bash", "-c", script], client_env)
    assert installed(venv, client_env)["pagedemo"] == "0.9"

    # A uv project: the pyproject.toml index and the `uv export` recipe give a requirements.txt for Connect.
    page.get_by_role("link", name="Latest: the most recent packages").click()
    project = tmp_path / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0.1"\nrequires-python = ">=3.11"\ndependencies = ["pagedemo"]\n\n'
        + copied(page, "setup-pyproject")
    )
    recipe = copied(page, "setup-uv-export")
    uv = shlex.quote(str(uv_bin()))
    commands = "\n".join(re.sub(r"^uv ", f"{uv} ", line) for line in recipe.splitlines())
    env = {k: v for k, v in client_env.items() if k != "UV_NO_CONFIG"}  # the recipe reads pyproject.toml
    run(["bash", "-ec", commands], {**env, "UV_PYTHON": sys.executable}, cwd=project)
    exported = [line for line in (project / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert exported[0] == f"--index-url {latest}"
    assert "pagedemo==1.0" in exported and "depone==1.2" in exported
    page.context.close()


def test_authenticated_repository_is_for_signed_in_users(
    catalog: Catalog, browser: Browser, tmp_path: Path, client_env: dict[str, str], venv: Path
) -> None:
    server = catalog.server
    for path in ("/repos/private/", "/repos/private/setup", "/repos/private/packages/secretpkg/"):
        response = httpx.get(server.url + path)
        assert response.status_code == 303 and response.headers["location"] == f"/login?next={path}"

    page = sign_in(browser, server.url, "vera", PASSWORD)
    page.goto("/repos/")
    page.get_by_role("link", name="private", exact=True).click()
    expect(page.get_by_role("link", name="secretpkg")).to_be_visible()
    page.get_by_role("link", name="Setup", exact=True).click()
    netrc = copied(page, "setup-netrc")
    assert netrc == "machine 127.0.0.1\nlogin __token__\npassword YOUR_TOKEN\n"  # no scheme, port or path
    screenshot(page, "packages-setup-authenticated")
    check_accessibility(page)

    # The page's .netrc with a real token in place of the placeholder: uv reads it and installs.
    token = server.token("--scope", "repos:read", "--repos", "private")
    Path(client_env["NETRC"]).write_text(netrc.replace("YOUR_TOKEN", token))
    os.chmod(client_env["NETRC"], 0o600)
    url = copied(page, "setup-url")
    run([str(uv_bin()), "pip", "install", "--python", str(venv / "bin" / "python"), "--index-url", url, "secretpkg"],
        client_env)  # fmt: skip
    assert installed(venv, client_env)["secretpkg"] == "1.0"
    page.context.close()


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/repos/nope/", 404, "There is no repository `nope`"),
        ("/repos/pypi/packages/no-such-project/", 404, "Project `no-such-project` is not in repository `pypi`"),
        ("/repos/pypi/packages/bad%0d%0aname/", 404, "is not a project name"),
        ("/repos/pypi/packages/pagedemo/?version=7.7", 404, "Version `7.7` of `pagedemo` is not in repository"),
        ("/repos/pypi/?page=abc", 400, "Page `abc` is not a page number"),
        ("/repos/pypi/?page=40", 404, "Page 40 is past the last page of results (1)"),
        ("/repos/pypi/?q=" + "x" * 300, 400, "search with at most 200"),
        ("/repos/pypi/setup?date=2026-13-45", 400, "`2026-13-45` is not a date"),
        ("/repos/pypi/setup?date=2999-01-01", 400, "2999-01-01 is in the future"),
    ],
)
def test_bad_input_gets_an_error_page(catalog: Catalog, path: str, status: int, message: str) -> None:
    response = httpx.get(catalog.server.url + path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert message in response.text.replace("&#96;", "`")


def test_project_names_redirect_to_their_normal_form(catalog: Catalog) -> None:
    response = httpx.get(catalog.server.url + "/repos/pypi/packages/PageDemo?version=0.9")
    assert response.status_code == 301
    assert response.headers["location"] == "/repos/pypi/packages/pagedemo/?version=0.9"


def test_a_mirrored_project_page_asks_the_upstream(catalog: Catalog) -> None:
    """The page of a name the mirror has never seen fetches its index page and the shown release's `.metadata`.
    The server mirrors its own `pypi` repository: an upstream that costs no second server."""
    server = catalog.server
    server.cli("source", "create", "--name", "upstream", "--type", "pypi", "--upstream", server.index)
    server.cli("repo", "create", "--name", "mirror")
    server.cli("repo", "subscribe", "--repo", "mirror", "--source", "upstream")
    server.wait_synced()
    assert "pagedemo" not in httpx.get(f"{server.url}/repos/mirror/").text
    page = httpx.get(f"{server.url}/repos/mirror/packages/pagedemo/", timeout=30)
    assert page.status_code == 200
    assert "Demo package for the pages" in page.text and "<em>emphasis</em>" in page.text
    assert 'href="/repos/mirror/packages/depone/"' in page.text  # a mirror serves what its upstream has
    assert "pagedemo" in httpx.get(f"{server.url}/repos/mirror/").text
    assert httpx.get(f"{server.url}/repos/mirror/packages/not-upstream/", timeout=30).status_code == 404
