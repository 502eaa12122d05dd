"""Content served as files, deployed with the real rsconnect: static HTML, hand-written manifests, notebooks
rendered on the server (and on the client with --static), and Quarto, through `/content/<guid>/`."""

from __future__ import annotations

import http.client
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.publishing import APPS, Publishing, copy_app, publishing_server, setup_publishing

QUARTO = APPS / "quarto-standin" / "quarto"


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Publishing]:
    # No quarto on the server's PATH, whatever this machine has: the first Quarto test wants none anywhere.
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep) if not Path(d, "quarto").exists())
    with publishing_server("sqlite", tmp_path_factory.mktemp("packyard-static"), {"PATH": path}) as server:
        yield setup_publishing(server, tmp_path_factory.mktemp("publisher-home"), wheels="notebook")


def deployed_guid(result: object) -> str:
    """The content rsconnect deployed to, from the URL it prints (file deploys keep no record in the folder)."""
    output = result.stdout + result.stderr  # type: ignore[attr-defined]
    found = re.findall(r"/content/([0-9a-f-]{36})/", output)
    assert found, output
    return found[-1]


def raw_get(pub: Publishing, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A GET sent exactly as written: httpx would remove `..` segments before sending."""
    address = urlsplit(pub.server.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        conn.request("GET", path, headers={**pub.headers, **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def site(pub: Publishing, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    app = copy_app("html-site", tmp_path_factory.mktemp("apps"))
    result = pub.deploy("html", app)
    assert "Deployment completed successfully." in result.stdout + result.stderr
    return app, pub.record(app)["app_guid"]


def test_static_html_pages_and_assets(pub: Publishing, site: tuple[Path, str]) -> None:
    _, guid = site
    page = pub.get(f"/content/{guid}/")
    assert page.status_code == 200 and "Static site, version 1" in page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    expected = {
        "about.html": "text/html; charset=utf-8",
        "css/site.css": "text/css; charset=utf-8",
        "js/app.js": "text/javascript; charset=utf-8",
        "img/logo.svg": "image/svg+xml; charset=utf-8",
        "docs/": "text/html; charset=utf-8",
    }
    for path, kind in expected.items():
        response = pub.get(f"/content/{guid}/{path}")
        assert response.status_code == 200 and response.headers["content-type"] == kind, path
    assert "The docs index." in pub.get(f"/content/{guid}/docs/").text
    folder = pub.get(f"/content/{guid}/docs?x=1", follow_redirects=False)
    assert folder.status_code == 301 and folder.headers["location"] == "./docs/?x=1"
    # The deploy built no environment: there is no Python in a static site.
    task_log = pub.api("GET", f"/v1/content/{guid}/log").json()["deploy"]
    assert any("No Python environment" in line for line in task_log), task_log
    assert not any("Resolved" in line for line in task_log)


def test_caching_headers_conditional_get_head_and_range(pub: Publishing, site: tuple[Path, str]) -> None:
    _, guid = site
    url = f"/content/{guid}/css/site.css"
    full = pub.get(url)
    etag, modified = full.headers["etag"], full.headers["last-modified"]
    assert full.headers["accept-ranges"] == "bytes" and full.headers["cache-control"] == "no-cache"
    assert pub.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert pub.get(url, headers={"If-None-Match": f'W/{etag}, "other"'}).status_code == 304
    assert pub.get(url, headers={"If-None-Match": '"other"', "If-Modified-Since": modified}).status_code == 200
    assert pub.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    head = httpx.head(f"{pub.server.url}{url}", headers=pub.headers)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(full.content)) and head.headers["etag"] == etag
    part = pub.get(url, headers={"Range": "bytes=0-3"})
    assert part.status_code == 206 and part.content == full.content[:4]
    assert part.headers["content-range"] == f"bytes 0-3/{len(full.content)}"
    assert pub.get(url, headers={"Range": "bytes=-5"}).content == full.content[-5:]
    assert pub.get(url, headers={"Range": "bytes=2-3", "If-Range": '"stale"'}).status_code == 200
    beyond = pub.get(url, headers={"Range": "bytes=100000-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(full.content)}"


def test_paths_cannot_leave_the_content(pub: Publishing, site: tuple[Path, str], tmp_path: Path) -> None:
    _, guid = site
    for path in ("../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "css/..%2f..%2f..%2fpackyard.toml", "a%00b"):
        status, _, body = raw_get(pub, f"/content/{guid}/{path}")
        assert status == 400 and b"cannot leave the content" in body, (path, status, body)
    # A symlink planted in the served folder (bundles cannot hold one) still reaches nothing outside it.
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    bundle = next((pub.server.data_dir / "apps" / guid).glob("bundle-*"))
    (bundle / "leak.txt").symlink_to(secret)
    (bundle / "leak-dir").symlink_to(tmp_path)
    for path in ("leak.txt", "leak-dir/secret.txt"):
        status, _, body = raw_get(pub, f"/content/{guid}/{path}")
        assert status == 404 and b"not for the web" not in body, path
    page = pub.get(f"/content/{guid}/missing.html", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>404</h1>" in page.text and "`/missing.html` is not a file of this content" in page.text
    refused = httpx.post(f"{pub.server.url}/content/{guid}/", headers=pub.headers)
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"


def test_draft_activation_and_rollback_are_pointer_switches(pub: Publishing, site: tuple[Path, str]) -> None:
    app, guid = site
    (app / "index.html").write_text((app / "index.html").read_text().replace("version 1", "version 2"))
    result = pub.deploy("html", app)
    output = result.stdout + result.stderr
    # rsconnect deploys a draft, fetches /content/<guid>/_bundle<id>/, then activates the draft.
    assert "Draft served at" in output and "its files are ready" in output, output
    assert "version 2" in pub.get(f"/content/{guid}/").text
    bundles = pub.api("GET", f"/v1/content/{guid}/bundles").json()
    newest, oldest = bundles[0]["id"], bundles[-1]["id"]
    assert "version 2" in pub.get(f"/content/{guid}/_bundle{newest}/").text
    task = pub.api("POST", f"/v1/content/{guid}/deploy", json={"bundle_id": oldest}).json()
    outcome = pub.wait_task(task["task_id"])
    assert outcome["code"] == 0 and any("its files are ready" in line for line in outcome["output"]), outcome
    assert "version 1" in pub.get(f"/content/{guid}/").text
    assert pub.api("GET", f"/v1/content/{guid}").json()["bundle_id"] == oldest


def test_hand_written_manifest_gets_a_listing(pub: Publishing, tmp_path: Path) -> None:
    app = copy_app("static-files", tmp_path)
    guid = deployed_guid(pub.rsconnect("deploy", "manifest", "-n", "packyard", str(app / "manifest.json")))
    listing = pub.get(f"/content/{guid}/")
    assert listing.status_code == 200 and listing.headers["content-type"] == "text/html; charset=utf-8"
    assert 'href="./data/"' in listing.text and 'href="./report.html"' in listing.text
    assert "A report published" in pub.get(f"/content/{guid}/report.html").text
    csv = pub.get(f"/content/{guid}/data/results.csv")
    assert csv.headers["content-type"] == "text/csv; charset=utf-8" and csv.text.startswith("region,sales")


def test_a_missing_primary_html_fails_the_deploy(pub: Publishing, tmp_path: Path) -> None:
    app = copy_app("static-files", tmp_path)
    manifest = json.loads((app / "manifest.json").read_text())
    manifest["metadata"]["primary_html"] = "home.html"
    (app / "manifest.json").write_text(json.dumps(manifest))
    result = pub.rsconnect("deploy", "manifest", "-n", "packyard", str(app / "manifest.json"), check=False)
    assert result.returncode == 1
    assert "`metadata.primary_html` is `home.html`, which is not a file in the bundle" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def notebook(pub: Publishing, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    app = copy_app("notebook", tmp_path_factory.mktemp("apps"))
    result = pub.deploy("notebook", app / "analysis.ipynb", "-E", "GREETING=hello from -E")
    return app, deployed_guid(result)


def test_notebook_is_executed_and_rendered_at_deploy(pub: Publishing, notebook: tuple[Path, str]) -> None:
    _, guid = notebook
    page = pub.get(f"/content/{guid}/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    # The cells ran on the server, with the content's variables and Connect's own.
    assert "Greeting: hello from -E" in page.text and f"Content: {guid}" in page.text
    assert "The answer is 42" in page.text and "Quarterly report" in page.text
    assert "greeting_from_environment" in page.text and "hidden_tagged_value" in page.text  # the code is shown
    log = pub.api("GET", f"/v1/content/{guid}/log").json()["deploy"]
    assert any("Adding nbconvert" in line for line in log) and any("with nbconvert" in line for line in log)
    # The notebook's source is not served: only the rendered page.
    assert pub.get(f"/content/{guid}/analysis.ipynb").status_code == 404


def test_hide_tagged_input_then_hide_all_input(pub: Publishing, notebook: tuple[Path, str]) -> None:
    app, guid = notebook
    pub.deploy("notebook", app / "analysis.ipynb", "--hide-tagged-input")
    page = pub.get(f"/content/{guid}/").text
    assert "The answer is 42" in page and "hidden_tagged_value" not in page
    assert "greeting_from_environment" in page
    pub.deploy("notebook", app / "analysis.ipynb", "--hide-all-input")
    page = pub.get(f"/content/{guid}/").text
    assert "The answer is 42" in page and "Greeting: hello from -E" in page
    assert "greeting_from_environment" not in page and "hidden_tagged_value" not in page


def test_a_failing_cell_fails_the_deploy_and_the_old_page_stays(pub: Publishing, notebook: tuple[Path, str]) -> None:
    app, guid = notebook
    before = pub.get(f"/content/{guid}/").text
    document = json.loads((app / "analysis.ipynb").read_text())
    document["cells"].append(
        {
            "cell_type": "code",
            "id": "fails",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": ['raise ValueError("the cell failed on purpose")'],
        }  # fmt: skip
    )
    (app / "analysis.ipynb").write_text(json.dumps(document))
    result = pub.deploy("notebook", app / "analysis.ipynb", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert 'raise ValueError("the cell failed on purpose")' in output  # the cell, in the task output
    assert "a cell raised `ValueError: the cell failed on purpose`" in output, output
    assert pub.get(f"/content/{guid}/").text == before


def test_notebook_rendered_on_the_client_with_static(pub: Publishing, tmp_path: Path) -> None:
    app = copy_app("notebook", tmp_path)
    result = pub.deploy("notebook", app / "analysis.ipynb", "--static", "--new")
    guid = deployed_guid(result)
    assert pub.api("GET", f"/v1/content/{guid}").json()["app_mode"] == "static"
    page = pub.get(f"/content/{guid}/")
    assert "The answer is 42" in page.text and "Greeting: no greeting" in page.text  # ran on the client
    assert pub.get(f"/content/{guid}/analysis.html").text == page.text


def test_quarto_without_a_quarto_binary_is_a_clear_error(pub: Publishing, tmp_path: Path) -> None:
    app = copy_app("quarto-doc", tmp_path)
    result = pub.deploy("quarto", app / "report.qmd", "--quarto", str(QUARTO), check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "needs the `quarto` binary, which this server does not have" in output, output
    assert "`[quarto] executable` is not set" in output and "quarto-cli" in output


@pytest.fixture(scope="module")
def with_quarto(pub: Publishing) -> Iterator[Publishing]:
    """The server restarted with `[quarto] executable` set to the stand-in (QUARTO's docstring says why)."""
    saved = dict(pub.server.env)
    pub.server.env = {**saved, "PACKYARD_QUARTO_EXECUTABLE": str(QUARTO)}
    pub.server.restart()
    try:
        yield pub
    finally:
        pub.server.env = saved


def test_files_are_served_again_after_a_restart(with_quarto: Publishing, site: tuple[Path, str]) -> None:
    _, guid = site
    assert "version 1" in with_quarto.get(f"/content/{guid}/").text


def test_quarto_project_rendered_with_a_stand_in_executable(with_quarto: Publishing, tmp_path: Path) -> None:
    """No real Quarto can run on this machine (see tests/apps/quarto-standin/quarto), so a stand-in configured
    as `[quarto] executable` renders; this covers Packyard's render path, not Quarto's own output."""
    pub = with_quarto
    app = copy_app("quarto-site", tmp_path)
    result = pub.deploy("quarto", app, "--quarto", str(QUARTO))
    output = result.stdout + result.stderr
    assert f"Quarto: {QUARTO} (from `[quarto] executable`)" in output and "Running `quarto render`" in output
    guid = pub.record(app)["app_guid"]
    assert "Welcome to the team site." in pub.get(f"/content/{guid}/").text
    assert "We publish with Quarto." in pub.get(f"/content/{guid}/about.html").text
    assert pub.get(f"/content/{guid}/styles.css").headers["content-type"] == "text/css; charset=utf-8"
    assert pub.get(f"/content/{guid}/index.qmd").status_code == 404  # only the output is served
    # A render that fails leaves the previous output serving.
    (app / "about.qmd").write_text("---\ntitle: Broken\n---\n\nRENDER_FAILS\n")
    failed = pub.deploy("quarto", app, "--quarto", str(QUARTO), check=False)
    assert failed.returncode == 1 and "the document asked the stand-in to fail" in failed.stdout + failed.stderr
    assert "We publish with Quarto." in pub.get(f"/content/{guid}/about.html").text


def test_quarto_document_rendered_with_a_stand_in_executable(with_quarto: Publishing, tmp_path: Path) -> None:
    """The stand-in renders here too (see the test above); a single document is served at the content's root."""
    app = copy_app("quarto-doc", tmp_path)
    guid = deployed_guid(with_quarto.deploy("quarto", app / "report.qmd", "--quarto", str(QUARTO)))
    page = with_quarto.get(f"/content/{guid}/")
    assert "Weekly numbers" in page.text and "Sales went up" in page.text
    assert with_quarto.get(f"/content/{guid}/report.html").text == page.text
