"""A simple page answers the same through the raw-ASGI hot path and through the FastAPI routes.

One server, two repositories serving the same uploaded project: `pypi` (local only) is answered by the hot path,
and `routed` (the same local source, then a mirror source) by the routes, because with `[mirror] index_ttl = 0`
a mirrored repository's project page is never fresh and the hot path always passes it on. For a project found
in the local source the mirror never asks its upstream, so both repositories hold the same page."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Server, _start
from tests.dists import make_wheel
from tests.upstreams import Peers

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = f"{JSON}, {HTML}; q=0.1, text/html; q=0.01"
UV_ACCEPT = f"{JSON}, {HTML};q=0.2, text/html;q=0.01"
POETRY_ACCEPT = f"{JSON}, */*;q=0.1"
# Headers that differ between any two responses whatever serves them.
_PER_RESPONSE = {"date", "server"}


@pytest.fixture(scope="module")
def two_paths(module_peers: Peers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    upstream = module_peers.pypiserver([])
    srv = _start(tmp_path_factory.mktemp("two-paths"), "", {"PACKYARD_MIRROR_INDEX_TTL": "0"})
    module_peers.started.append(srv)
    srv.cli("source", "create", "--name", "upstream", "--type", "pypi", "--upstream", upstream.index)
    srv.cli("repo", "create", "--name", "routed")
    srv.cli("repo", "subscribe", "--repo", "routed", "--source", "local-python-src")
    srv.cli("repo", "subscribe", "--repo", "routed", "--source", "upstream")
    srv.wait_synced()
    srv.twine(make_wheel(tmp_path_factory.mktemp("dist"), "two-paths", "1.0"))
    yield srv


def both(server: Server, query: str = "", method: str = "GET", **headers: str) -> tuple[httpx.Response, ...]:
    """The same request to the hot path (`pypi`) and to the routes (`routed`)."""
    return tuple(
        httpx.request(method, f"{server.url}/{repo}/latest/simple/two-paths/{query}", headers=headers, timeout=30)
        for repo in ("pypi", "routed")
    )


def same(hot: httpx.Response, routed: httpx.Response) -> None:
    def shape(r: httpx.Response) -> tuple[int, str, dict[str, str], bytes]:
        headers = {k: v for k, v in r.headers.items() if k not in _PER_RESPONSE}
        return r.status_code, r.reason_phrase, headers, r.content

    assert shape(hot) == shape(routed)


@pytest.mark.parametrize(
    ("query", "accept", "status", "content_type"),
    [
        (f"?format={JSON}", None, 200, JSON),
        (f"?format={JSON}&x=1", None, 200, JSON),
        (f"?x=1&format={JSON}", None, 200, JSON),
        ("?format=application/vnd.pypi.simple.v1%2Bjson", None, 200, JSON),
        (f"?format={HTML}", PIP_ACCEPT, 200, HTML),
        (f"?format={JSON}", "text/html", 200, JSON),
        ("?format=text/html", None, 200, "text/html; charset=utf-8"),
        ("?format=", UV_ACCEPT, 200, JSON),  # an empty format is no format: Accept decides
        ("?x=1", UV_ACCEPT, 200, JSON),
        ("", None, 200, "text/html; charset=utf-8"),
        ("", "*/*", 200, "text/html; charset=utf-8"),
        ("", PIP_ACCEPT, 200, JSON),
        ("", UV_ACCEPT, 200, JSON),
        ("", POETRY_ACCEPT, 200, JSON),
        ("", HTML, 200, HTML),
        ("", "application/vnd.pypi.simple.latest+json", 200, JSON),
        ("?format=application/xml", None, 406, "text/plain; charset=utf-8"),
        ("?format=application/xml&x=1", JSON, 406, "application/problem+json"),
        ("", "application/xml", 406, "text/plain; charset=utf-8"),
        (f"?format={JSON}&format=text/html", None, 400, "text/plain; charset=utf-8"),
    ],
)
def test_same_answer_on_both_paths(
    two_paths: Server, query: str, accept: str | None, status: int, content_type: str
) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    hot, routed = both(two_paths, query, **headers)
    assert hot.status_code == status, hot.text
    assert hot.headers["content-type"] == content_type
    same(hot, routed)
    head_hot, head_routed = both(two_paths, query, "HEAD", **headers)
    same(head_hot, head_routed)
    if status == 200:
        assert hot.headers["vary"] == "Accept"
        assert hot.headers["cache-control"] == "max-age=0, must-revalidate"
        assert head_hot.content == b""
        assert head_hot.headers["content-length"] == str(len(hot.content))


def test_bad_format_says_which_value_and_what_to_ask_for(two_paths: Server) -> None:
    hot, routed = both(two_paths, "?format=application/xml&x=1")
    same(hot, routed)
    assert hot.text == (
        "No media type in `?format=application/xml` is served here; ask for "
        f"`{JSON}`, `{HTML}` or `text/html` (in `Accept` or as `?format=`).\n"
    )
    hot, routed = both(two_paths, Accept="application/xml")
    same(hot, routed)
    assert "No media type in `Accept: application/xml` is served here" in hot.text
    hot, routed = both(two_paths, f"?format={JSON}&format=text/html")
    same(hot, routed)
    assert hot.text == (
        f"The query names several formats (`{JSON}`, `text/html`); give `?format=` once, e.g. `?format={JSON}`.\n"
    )


@pytest.mark.parametrize("accept", [JSON, "text/html"])
def test_if_none_match_on_both_paths(two_paths: Server, accept: str) -> None:
    first, _ = both(two_paths, Accept=accept)
    etag = first.headers["etag"]
    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        hot, routed = both(two_paths, Accept=accept, **{"If-None-Match": if_none_match})
        assert hot.status_code == 304, if_none_match
        same(hot, routed)
        assert hot.headers["etag"] == etag
        assert "content-type" not in hot.headers
    hot, routed = both(two_paths, Accept=accept, **{"If-None-Match": '"other"'})
    assert hot.status_code == 200
    same(hot, routed)
    # The other format's ETag does not match this one.
    other = JSON if accept == "text/html" else "text/html"
    other_etag = both(two_paths, Accept=other)[0].headers["etag"]
    assert other_etag != etag
    hot, routed = both(two_paths, Accept=accept, **{"If-None-Match": other_etag})
    assert hot.status_code == 200
    same(hot, routed)


@pytest.mark.parametrize(
    ("path", "method", "status", "message"),
    [
        (
            "/pypi/latest/simple/%20/",
            "GET",
            404,
            "` ` is not a project name (letters, digits, `.`, `_` and `-`); project pages are "
            "`/pypi/latest/simple/<name>/`, and `/pypi/latest/simple/` lists the names.",
        ),
        (
            "/routed/latest/simple/two-paths/files/",
            "GET",
            404,
            "`two-paths/files/` is not a project page; project pages are `/routed/latest/simple/<name>/`, and "
            "`/routed/latest/simple/` lists the names.",
        ),
        (
            "/pypi/latest/simple/..%2F/",
            "HEAD",
            404,
            "",  # HEAD: the status alone
        ),
        (
            "/pypi/someday/simple/two-paths/",
            "GET",
            404,
            "Snapshot `someday` is not `latest` or a past or present date (`YYYY-MM-DD`, UTC); "
            "`/__api__/repos/<repo>/transaction-dates` lists the dates with changes.",
        ),
        (
            "/nope/latest/simple/two-paths/",
            "GET",
            404,
            "Repository `nope` does not exist. Known repositories: `pypi`, `routed`.",
        ),
        (
            "/routed/latest/simple/two-paths/",
            "POST",
            405,
            "This is the simple index URL, which is read-only; upload to `/upload/pypi/<source>` instead "
            "(for example `/upload/pypi/local-python-src`).",
        ),
    ],
)
def test_bad_input_gets_its_status_and_one_sentence(
    two_paths: Server, path: str, method: str, status: int, message: str
) -> None:
    response = httpx.request(method, f"{two_paths.url}{path}", timeout=30)
    assert response.status_code == status
    assert response.text == (message + "\n" if message else "")
    if message:
        assert response.reason_phrase == " ".join(message.replace("`", "").split())  # twine shows the status line
