"""The simple API as clients read it: negotiation, headers, redirects, metadata files, ranges, yanks, priority."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server
from tests.dists import make_sdist, make_wheel

PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
UV_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
POETRY_ACCEPT = "application/vnd.pypi.simple.v1+json, */*;q=0.1"
JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture(scope="module")
def corpus(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dist = tmp_path_factory.mktemp("dist")
    files = {
        "wheel": make_wheel(dist, "Api_Demo", "1.0", requires_python=">=3.8,<4"),
        "wheel2": make_wheel(dist, "Api_Demo", "1.1"),
        "sdist": make_sdist(dist, "Api_Demo", "1.0"),
    }
    server.twine(*files.values())
    return files


def page(server: Server, project: str = "api-demo", accept: str | None = None, **headers: str) -> httpx.Response:
    if accept is not None:
        headers["Accept"] = accept
    return httpx.get(f"{server.index}{project}/", headers={k.replace("_", "-"): v for k, v in headers.items()})


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, "text/html; charset=utf-8"),
        ("*/*", "text/html; charset=utf-8"),
        ("text/html", "text/html; charset=utf-8"),
        (PIP_ACCEPT, JSON),
        (UV_ACCEPT, JSON),
        (POETRY_ACCEPT, JSON),
        ("application/vnd.pypi.simple.latest+json", JSON),
        ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
        (
            "application/vnd.pypi.simple.v1+json;q=0.1, application/vnd.pypi.simple.v1+html",
            "application/vnd.pypi.simple.v1+html",
        ),
    ],
)
def test_negotiates_format(server: Server, corpus: dict[str, Path], accept: str | None, content_type: str) -> None:
    response = page(server, accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["vary"] == "Accept"
    for path in ("", "api-demo/"):
        assert (
            httpx.get(f"{server.index}{path}", headers={"Accept": accept or ""}).headers["content-type"] == content_type
        )


def test_unacceptable_format_is_406(server: Server, corpus: dict[str, Path]) -> None:
    response = page(server, accept="application/xml")
    assert response.status_code == 406
    assert JSON in response.text


def test_format_query_overrides_accept(server: Server, corpus: dict[str, Path]) -> None:
    response = httpx.get(f"{server.index}api-demo/?format={JSON}", headers={"Accept": "text/html"})
    assert response.headers["content-type"] == JSON


def test_json_project_page(server: Server, corpus: dict[str, Path]) -> None:
    data = page(server, accept=JSON).json()
    assert data["meta"]["api-version"] == "1.4"
    assert data["name"] == "api-demo"
    assert data["versions"] == ["1.0", "1.1"]
    by_name = {f["filename"]: f for f in data["files"]}
    wheel = by_name[corpus["wheel"].name]
    assert wheel["hashes"]["sha256"] == hashlib.sha256(corpus["wheel"].read_bytes()).hexdigest()
    assert wheel["size"] == corpus["wheel"].stat().st_size
    assert wheel["requires-python"] == ">=3.8,<4"
    assert wheel["upload-time"].endswith("Z") and "T" in wheel["upload-time"]
    assert wheel["yanked"] is False
    assert wheel["core-metadata"] == wheel["data-dist-info-metadata"] != False  # noqa: E712
    assert by_name[corpus["sdist"].name]["core-metadata"] is False


def test_html_project_page(server: Server, corpus: dict[str, Path]) -> None:
    html = page(server).text
    assert '<meta name="pypi:repository-version" content="1.4">' in html
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in html
    sha = hashlib.sha256(corpus["wheel"].read_bytes()).hexdigest()
    assert f"#sha256={sha}" in html
    assert html.count("data-core-metadata=") == 2 and html.count("data-dist-info-metadata=") == 2


def test_root_lists_projects(server: Server, corpus: dict[str, Path]) -> None:
    server.wait_synced()  # root pages are re-rendered in the background, at most twice a second
    assert '<a href="api-demo/">Api_Demo</a>' in httpx.get(server.index).text
    assert {"name": "Api_Demo"} in httpx.get(server.index, headers={"Accept": JSON}).json()["projects"]


@pytest.mark.parametrize("path", ["Api_Demo/", "api.demo/", "API-DEMO", "api-demo"])
def test_redirects_to_normalized_name(server: Server, corpus: dict[str, Path], path: str) -> None:
    response = httpx.get(f"{server.index}{path}")
    assert response.status_code == 301
    assert response.headers["location"] == "/pypi/latest/simple/api-demo/"


def test_etag_revalidation(server: Server, corpus: dict[str, Path]) -> None:
    first = page(server, accept=JSON)
    again = page(server, accept=JSON, If_None_Match=first.headers["etag"])
    assert again.status_code == 304 and again.content == b""
    html = page(server)
    assert html.headers["etag"] != first.headers["etag"]


def test_unknown_project_and_repository(server: Server, corpus: dict[str, Path]) -> None:
    missing = httpx.get(f"{server.index}no-such-project/")
    assert missing.status_code == 404 and "no-such-project" in missing.text
    repo = httpx.get(f"{server.url}/nope/latest/simple/")
    assert repo.status_code == 404 and "Repository `nope` does not exist" in repo.text


def test_metadata_file_matches_its_hash(server: Server, corpus: dict[str, Path]) -> None:
    data = page(server, accept=JSON).json()
    wheel = next(f for f in data["files"] if f["filename"] == corpus["wheel"].name)
    url = httpx.URL(f"{server.index}api-demo/").join(wheel["url"])
    metadata = httpx.get(f"{url}.metadata")
    assert metadata.status_code == 200
    assert hashlib.sha256(metadata.content).hexdigest() == wheel["core-metadata"]["sha256"]
    assert metadata.content.startswith(b"Metadata-Version: 2.1\nName: Api_Demo\n")


def test_files_head_range_etag_and_no_gzip(server: Server, corpus: dict[str, Path]) -> None:
    data = page(server, accept=JSON).json()
    urls = {f["filename"]: httpx.URL(f"{server.index}api-demo/").join(f["url"]) for f in data["files"]}
    wheel_bytes = corpus["wheel"].read_bytes()
    head = httpx.head(urls[corpus["wheel"].name], headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(wheel_bytes)
    assert head.headers["accept-ranges"] == "bytes"
    assert "immutable" in head.headers["cache-control"]
    ranged = httpx.get(urls[corpus["wheel"].name], headers={"Range": "bytes=-22"})
    assert ranged.status_code == 206 and ranged.content == wheel_bytes[-22:]
    cached = httpx.get(urls[corpus["wheel"].name], headers={"If-None-Match": head.headers["etag"]})
    assert cached.status_code == 304
    sdist = httpx.get(urls[corpus["sdist"].name], headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in sdist.headers
    assert sdist.headers["content-type"] == "application/octet-stream"
    assert sdist.content == corpus["sdist"].read_bytes()
    assert gzip.decompress(sdist.content)  # still the gzip stream, untouched
    wrong = httpx.get(str(urls[corpus["sdist"].name]).replace(hashlib.sha256(sdist.content).hexdigest(), "0" * 64))
    assert wrong.status_code == 404


def test_yank_and_unyank(server: Server, corpus: dict[str, Path]) -> None:
    server.cli(
        "yank", "--source", "local-python-src", "--project", "Api_Demo", "--version", "1.1", "--reason", "broken import"
    )
    server.wait_synced()
    files = {f["filename"]: f for f in page(server, accept=JSON).json()["files"]}
    assert files[corpus["wheel2"].name]["yanked"] == "broken import"
    assert files[corpus["wheel"].name]["yanked"] is False
    assert 'data-yanked="broken import"' in page(server).text
    server.cli("unyank", "--source", "local-python-src", "--project", "api-demo", "--version", "1.1")
    server.wait_synced()
    assert all(f["yanked"] is False for f in page(server, accept=JSON).json()["files"])
    missing = server.cli("yank", "--source", "local-python-src", "--project", "api-demo", "--version", "9", check=False)
    assert missing.returncode == 1 and "No `api-demo` version `9`" in missing.stderr


def test_higher_priority_source_hides_a_name(server: Server, corpus: dict[str, Path], tmp_path: Path) -> None:
    """Dependency confusion: a name in `local-python-src` is never taken from a lower source."""
    server.cli("source", "create", "--name", "lower-src")
    server.cli("repo", "subscribe", "--repo", "pypi", "--source", "lower-src")
    token = server.token("--scope", "sources:write", "--sources", "lower-src")
    shadow = make_wheel(tmp_path, "api-demo", "99.0")
    only_lower = make_wheel(tmp_path, "lower-only", "1.0")
    server.twine(shadow, only_lower, source="lower-src", token=token)
    server.wait_synced()
    assert "99.0" not in page(server, accept=JSON).json()["versions"]
    assert page(server, "lower-only", accept=JSON).json()["versions"] == ["1.0"]
