"""The `pypi` mirror source, against real upstreams on 127.0.0.1 (pypiserver and a second Packyard), with pip and uv.

The upstream is whatever `[mirror] upstream` names (`PACKYARD_MIRROR_UPSTREAM`); `Peers` in tests/upstreams.py
starts it and counts the requests it receives, which is how "never touches the upstream" is checked."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from subprocess import CompletedProcess
from urllib.parse import urljoin

import httpx
import pytest
import sqlalchemy

from tests.conftest import Server, fresh_database, pip, run, uv_bin
from tests.dists import make_buildable_sdist, make_sdist, make_wheel
from tests.test_install import installed
from tests.upstreams import PackyardUpstream, Peers, PypiServer, Upstream, blackhole

JSON = "application/vnd.pypi.simple.v1+json"
STALE = '110 - "Response is Stale"'
# mir-app needs mir-lib>=2 (wheels and an sdist) and mir-util (an sdist only), which needs mir-leaf.
EXPECTED = {"mir-app": "1.0", "mir-lib": "2.0", "mir-util": "0.1", "mir-leaf": "1.0"}


def chain(out: Path, upstream_kind: str) -> list[Path]:
    dists = [
        make_wheel(out, "mir-app", "1.0", requires=["mir-lib>=2", "mir-util"]),
        make_wheel(out, "mir-lib", "1.0"),
        make_wheel(out, "mir-lib", "2.0"),
        make_sdist(out, "mir-lib", "2.0"),
        make_buildable_sdist(out, "mir-util", "0.1", requires=["mir-leaf"]),
        make_wheel(out, "mir-leaf", "1.0"),
        # Also a private name downstream, where it has only 1.0.
        make_wheel(out, "shared-name", "9.0"),
    ]
    if upstream_kind == "packyard":
        # pypiserver cannot say `requires-python`, so only a Packyard upstream offers this unusable release.
        dists.append(make_wheel(out, "mir-lib", "3.0", requires_python=">=4"))
    return dists


@dataclass
class Mirrored:
    kind: str
    upstream: Upstream
    mirror: Server
    dists: list[Path]

    def upstream_requests_for(self, text: str) -> list[str]:
        return [path for path in self.upstream.requests() if text in path]


@pytest.fixture(
    scope="module",
    params=[("pypiserver", "sqlite"), ("packyard", "sqlite"), ("packyard", "postgresql")],
    ids=["pypiserver-sqlite", "packyard-sqlite", "packyard-postgresql"],
)
def mirrored(
    request: pytest.FixtureRequest, module_peers: Peers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mirrored]:
    kind, database = request.param
    dists = chain(tmp_path_factory.mktemp("upstream-dists"), kind)
    upstream: Upstream = module_peers.pypiserver(dists) if kind == "pypiserver" else module_peers.packyard(dists)
    if isinstance(upstream, PackyardUpstream):
        upstream.server.cli(
            "yank", "--source", "local-python-src", "--project", "mir-lib", "--version", "1.0", "--reason", "broken"
        )
    with fresh_database(database) as database_url:
        mirror = module_peers.mirror(upstream.index, database_url)
        mirror.twine(make_wheel(tmp_path_factory.mktemp("private"), "shared-name", "1.0"))
        try:
            yield Mirrored(kind, upstream, mirror, dists)
        finally:
            mirror.stop()


@dataclass
class Client:
    venv: Path
    env: dict[str, str]

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


def fresh_client(tmp_path: Path, client_env: dict[str, str], tag: str) -> Client:
    """A new empty venv and new client caches: nothing comes from an earlier install."""
    env = {**client_env, "UV_CACHE_DIR": str(tmp_path / f"uv-cache-{tag}")}
    venv = tmp_path / f"venv-{tag}"
    run([str(uv_bin()), "venv", "-q", "--python", sys.executable, str(venv)], env)
    return Client(venv, env)


def uv_install(client: Client, index: str, *requirements: str, check: bool = True) -> CompletedProcess[str]:
    command = [str(uv_bin()), "pip", "install", "--python", client.python, "--index-url", index, *requirements]
    return run(command, client.env, check=check)


def pip_install(client: Client, index: str, *requirements: str, check: bool = True) -> CompletedProcess[str]:
    return run(pip(client.venv, "install", "--index-url", index, *requirements), client.env, check=check)


def project_of(dist: Path) -> str:
    if dist.suffix == ".whl":
        return dist.name.split("-")[0].replace("_", "-")
    return dist.name.removesuffix(".tar.gz").rsplit("-", 1)[0].replace("_", "-")


def page_json(server: Server, project: str, prefix: str = "latest") -> dict:
    response = httpx.get(f"{server.url}/pypi/{prefix}/simple/{project}/", headers={"Accept": JSON}, timeout=30)
    assert response.status_code == 200, f"{project}: {response.status_code} {response.text}"
    return response.json()


def file_url(server: Server, project: str, filename: str, prefix: str = "latest") -> str:
    page_url = f"{server.url}/pypi/{prefix}/simple/{project}/"
    entry = next(f for f in page_json(server, project, prefix)["files"] if f["filename"] == filename)
    return urljoin(page_url, entry["url"])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The default repository, pages and files


def test_default_repository_serves_the_mirror_below_local(mirrored: Mirrored) -> None:
    repos = mirrored.mirror.cli("repo", "list").stdout
    line = next(line for line in repos.splitlines() if line.split()[:1] == ["pypi"])
    assert "local-python-src, pypi" in line
    sources = mirrored.mirror.cli("source", "list").stdout
    assert any(line.split()[:2] == ["pypi", "pypi"] for line in sources.splitlines()), sources


def test_mirrored_page_keeps_upstream_hashes_and_relative_urls(mirrored: Mirrored) -> None:
    page = page_json(mirrored.mirror, "mir-lib")
    ours = {d.name: sha256(d.read_bytes()) for d in mirrored.dists if d.name.startswith("mir_lib-")}
    assert {f["filename"]: f["hashes"]["sha256"] for f in page["files"]} == ours
    for f in page["files"]:
        assert f["url"] == f"../../packages/mir-lib/{f['hashes']['sha256']}/{f['filename']}"
    html = httpx.get(f"{mirrored.mirror.url}/pypi/latest/simple/mir-lib/", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html")
    for name, digest in ours.items():
        assert f"../../packages/mir-lib/{digest}/{name}#sha256={digest}" in html.text


def test_metadata_through_the_mirror(mirrored: Mirrored, tmp_path: Path, client_env: dict[str, str]) -> None:
    """`.metadata` is served for every file whose page entry offers it, and matches the wheel's METADATA."""
    page = page_json(mirrored.mirror, "mir-app")
    (entry,) = page["files"]
    wheel = next(d for d in mirrored.dists if d.name == entry["filename"])
    with zipfile.ZipFile(io.BytesIO(wheel.read_bytes())) as zf:
        metadata = zf.read("mir_app-1.0.dist-info/METADATA")
    if mirrored.kind == "packyard":
        assert entry["core-metadata"] == {"sha256": sha256(metadata)}
    if entry.get("core-metadata"):
        url = file_url(mirrored.mirror, "mir-app", entry["filename"]) + ".metadata"
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200, response.text
        assert response.content == metadata
        assert sha256(response.content) == entry["core-metadata"]["sha256"]
    if mirrored.kind == "packyard":
        # uv resolves from `.metadata` alone, so the mirror fetches no wheel from the upstream for it.
        before = len(mirrored.upstream.requests())
        requirements = tmp_path / "requirements.in"
        requirements.write_text("mir-app\n")
        out = run(
            [str(uv_bin()), "pip", "compile", "--index-url", mirrored.mirror.index, str(requirements)], client_env
        ).stdout
        assert "mir-lib==2.0" in out and "mir-leaf==1.0" in out
        assert not [p for p in mirrored.upstream.requests()[before:] if p.endswith(".whl")], "uv needs no wheel"


def test_mirrored_files_match_the_upstream_bytes(mirrored: Mirrored) -> None:
    for dist in mirrored.dists:
        project = project_of(dist)
        if project == "shared-name":
            continue
        response = httpx.get(file_url(mirrored.mirror, project, dist.name), timeout=30)
        assert response.status_code == 200, f"{dist.name}: {response.status_code} {response.text}"
        assert response.content == dist.read_bytes()


def test_names_the_upstream_lacks_are_404(mirrored: Mirrored) -> None:
    response = httpx.get(f"{mirrored.mirror.url}/pypi/latest/simple/no-such-project-anywhere/", timeout=30)
    assert response.status_code == 404
    assert mirrored.upstream_requests_for("/no-such-project-anywhere/"), "the mirror should have asked upstream"


def test_upstream_facts_are_kept(mirrored: Mirrored) -> None:
    """requires-python, yanks, upload-time and core-metadata as the upstream states them; an upstream that states
    none of them (pypiserver's HTML) leaves them empty, with each file dated when the mirror first saw it."""
    if mirrored.kind != "packyard":
        started = datetime.now(UTC) - timedelta(hours=1)
        for entry in page_json(mirrored.mirror, "mir-lib")["files"]:
            name = entry["filename"]
            assert entry.get("requires-python") is None, name
            assert entry.get("yanked", False) is False, name
            assert entry.get("core-metadata", False) is False, name
            assert datetime.fromisoformat(entry["upload-time"].replace("Z", "+00:00")) > started, name
        return
    upstream_page = httpx.get(f"{mirrored.upstream.index}mir-lib/", headers={"Accept": JSON}).json()
    theirs = {f["filename"]: f for f in upstream_page["files"]}
    ours = {f["filename"]: f for f in page_json(mirrored.mirror, "mir-lib")["files"]}
    assert ours.keys() == theirs.keys()
    for name, entry in ours.items():
        upstream = theirs[name]
        assert entry.get("requires-python") == upstream.get("requires-python"), name
        assert entry.get("yanked", False) == upstream.get("yanked", False), name
        assert datetime.fromisoformat(entry["upload-time"]) == datetime.fromisoformat(upstream["upload-time"]), name
        assert entry.get("core-metadata", False) == upstream.get("core-metadata", False), name
    assert ours["mir_lib-1.0-py3-none-any.whl"]["yanked"] == "broken"
    assert ours["mir_lib-3.0-py3-none-any.whl"]["requires-python"] == ">=4"


# Installs


def test_pip_installs_through_the_mirror(mirrored: Mirrored, tmp_path: Path, client_env: dict[str, str]) -> None:
    client = fresh_client(tmp_path, client_env, "pip")
    pip_install(client, mirrored.mirror.index, "mir-app")
    assert installed(client.venv, client.env) == EXPECTED


def test_uv_installs_through_the_mirror(mirrored: Mirrored, tmp_path: Path, client_env: dict[str, str]) -> None:
    client = fresh_client(tmp_path, client_env, "uv")
    uv_install(client, mirrored.mirror.index, "mir-app")
    assert installed(client.venv, client.env) == EXPECTED


def test_second_install_sends_nothing_upstream(mirrored: Mirrored, tmp_path: Path, client_env: dict[str, str]) -> None:
    uv_install(fresh_client(tmp_path, client_env, "warm-uv"), mirrored.mirror.index, "mir-app")
    pip_install(fresh_client(tmp_path, client_env, "warm-pip"), mirrored.mirror.index, "mir-app")
    before = len(mirrored.upstream.requests())
    for tag, install in (("uv", uv_install), ("pip", pip_install)):
        client = fresh_client(tmp_path, client_env, f"second-{tag}")
        install(client, mirrored.mirror.index, "mir-app")
        assert installed(client.venv, client.env) == EXPECTED
    assert mirrored.upstream.requests()[before:] == []


def test_private_name_resolves_only_to_local_files(
    mirrored: Mirrored, tmp_path: Path, client_env: dict[str, str]
) -> None:
    page = page_json(mirrored.mirror, "shared-name")
    assert [f["filename"] for f in page["files"]] == ["shared_name-1.0-py3-none-any.whl"]
    for tag, install in (("uv", uv_install), ("pip", pip_install)):
        client = fresh_client(tmp_path, client_env, f"private-{tag}")
        install(client, mirrored.mirror.index, "shared-name")
        assert installed(client.venv, client.env) == {"shared-name": "1.0"}
        # Even asked for exactly the upstream's version, the local name wins: there is no 9.0.
        failed = install(client, mirrored.mirror.index, "shared-name==9.0", check=False)
        assert failed.returncode != 0 and "9.0" in failed.stdout + failed.stderr
    assert not mirrored.upstream_requests_for("shared_name-9.0"), "the upstream's file was fetched"


# One upstream download per file, and the hash check


def test_concurrent_first_requests_cause_one_upstream_download(peers: Peers, tmp_path: Path) -> None:
    # 16 MiB that does not compress, so the first download is still arriving when the others ask.
    big = make_wheel(tmp_path / "dists", "mir-big", "1.0", payload=b"# " + b"".join(_noise(16)))
    upstream = peers.pypiserver([big])
    mirror = peers.mirror(upstream.index)
    url = file_url(mirror, "mir-big", big.name)
    expected = sha256(big.read_bytes())
    barrier = threading.Barrier(8)
    results: list[tuple[int, str]] = []

    def fetch() -> None:
        barrier.wait(10)
        response = httpx.get(url, timeout=60)
        results.append((response.status_code, sha256(response.content)))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert results == [(200, expected)] * 8
    downloads = [p for p in upstream.requests() if p.endswith(big.name)]
    assert len(downloads) == 1, f"{len(downloads)} upstream downloads of one file"
    assert httpx.get(url, timeout=60).status_code == 200
    assert len([p for p in upstream.requests() if p.endswith(big.name)]) == 1


def _noise(mebibytes: int) -> Iterator[bytes]:
    """Incompressible bytes without newlines breaking nothing: the payload is a Python comment."""
    seed = b"packyard"
    for i in range(mebibytes * 32):
        block = hashlib.sha512(seed + i.to_bytes(4, "big")).digest()
        yield (block * 512).replace(b"\n", b"n").replace(b"\r", b"r")[: 32 * 1024]


def test_range_request_for_an_uncached_file(peers: Peers, tmp_path: Path) -> None:
    """uv reads a wheel's METADATA with Range requests when the page offers no `.metadata` (pypiserver's pages
    never do), and fails with "Failed to read from zip file" when it gets a 200 with the whole file instead."""
    wheel = make_wheel(tmp_path / "dists", "mir-range", "1.0")
    data = wheel.read_bytes()
    upstream = peers.pypiserver([wheel])
    mirror = peers.mirror(upstream.index)
    url = file_url(mirror, "mir-range", wheel.name)
    assert httpx.head(url, timeout=30).status_code == 200
    tail = httpx.get(url, headers={"Range": "bytes=-100"}, timeout=30)
    assert (tail.status_code, tail.content) == (206, data[-100:])
    assert tail.headers["content-range"] == f"bytes {len(data) - 100}-{len(data) - 1}/{len(data)}"
    head = httpx.get(url, headers={"Range": "bytes=0-99"}, timeout=30)
    assert (head.status_code, head.content) == (206, data[:100])


def test_hash_mismatch_fails_the_download_and_stores_nothing(
    peers: Peers, tmp_path: Path, client_env: dict[str, str]
) -> None:
    original = make_wheel(tmp_path / "dists", "mir-tamper", "1.0")
    original_bytes = original.read_bytes()
    upstream = peers.pypiserver([original])
    assert isinstance(upstream, PypiServer)
    mirror = peers.mirror(upstream.index)
    url = file_url(mirror, "mir-tamper", original.name)  # the page, with the upstream's sha256, is now cached
    tampered = make_wheel(tmp_path / "tampered", "mir-tamper", "1.0", payload=b"# not what the index says\n")
    (upstream.packages / original.name).write_bytes(tampered.read_bytes())

    for attempt in range(2):
        try:
            response = httpx.get(url, timeout=30)
        except httpx.TransportError:
            continue  # the body was being streamed when the mismatch showed: aborting it is a clear failure
        assert response.status_code != 200 or sha256(response.content) == sha256(original_bytes), attempt
        assert response.status_code >= 400
        assert "sha256" in response.text.lower() and original.name in response.text, response.text
    assert len([p for p in upstream.requests() if p.endswith(original.name)]) == 2, "a failed file is not kept"
    blobs = {p.name for p in (mirror.data_dir / "blobs").rglob("*") if p.is_file()}
    assert sha256(tampered.read_bytes()) not in blobs
    assert sha256(original_bytes) not in blobs

    client = fresh_client(tmp_path, client_env, "tampered")
    assert uv_install(client, mirror.index, "mir-tamper", check=False).returncode != 0
    assert installed(client.venv, client.env) == {}

    # Once the upstream serves the right bytes again, the mirror does too.
    (upstream.packages / original.name).write_bytes(original_bytes)
    assert httpx.get(url, timeout=30).content == original_bytes


# The upstream goes away


@pytest.mark.parametrize("kind", ["pypiserver", "packyard"])
def test_upstream_down_keeps_cached_installs_working(
    peers: Peers, tmp_path: Path, client_env: dict[str, str], kind: str
) -> None:
    dists = chain(tmp_path / "dists", kind)
    upstream: Upstream = peers.pypiserver(dists) if kind == "pypiserver" else peers.packyard(dists)
    mirror = peers.mirror(upstream.index, index_ttl=1, retry_after=2)
    uv_install(fresh_client(tmp_path, client_env, "warm"), mirror.index, "mir-app")

    upstream.stop()
    time.sleep(1.5)  # every cached page is now past its lifetime, so the mirror tries the upstream first
    for tag, install in (("uv", uv_install), ("pip", pip_install)):
        client = fresh_client(tmp_path, client_env, f"down-{tag}")
        install(client, mirror.index, "mir-app")
        assert installed(client.venv, client.env) == EXPECTED
    page = httpx.get(f"{mirror.url}/pypi/latest/simple/mir-app/", timeout=30)
    assert page.status_code == 200
    assert page.headers.get("warning") == STALE
    assert httpx.get(f"{mirror.url}/pypi/latest/simple/mir-never-seen/", timeout=30).status_code != 200

    upstream.restart()
    time.sleep(2.5)  # past `retry_after`: the mirror asks the upstream again
    before = len(upstream.requests())
    page = httpx.get(f"{mirror.url}/pypi/latest/simple/mir-app/", timeout=30)
    assert page.status_code == 200
    assert "warning" not in page.headers
    assert any(p.endswith("/mir-app/") for p in upstream.requests()[before:]), "revalidated with the upstream"


def test_hanging_upstream_times_out_to_the_stale_page(peers: Peers, tmp_path: Path) -> None:
    dists = chain(tmp_path / "dists", "pypiserver")
    upstream = peers.pypiserver(dists)
    mirror = peers.mirror(upstream.index, index_ttl=1, timeout=1, retry_after=30)
    assert page_json(mirror, "mir-app")["files"]
    cached_file = file_url(mirror, "mir-leaf", "mir_leaf-1.0-py3-none-any.whl")
    assert httpx.get(cached_file, timeout=30).status_code == 200

    upstream.stop()
    with blackhole(upstream.port) as hole:
        time.sleep(1.5)
        started = time.monotonic()
        page = httpx.get(f"{mirror.url}/pypi/latest/simple/mir-app/", timeout=30)
        assert time.monotonic() - started < 4, "the mirror should give up on the upstream after `timeout`"
        assert page.status_code == 200 and page.headers.get("warning") == STALE
        assert hole.accepted >= 1
        asked = hole.accepted
        # Within `retry_after` the cached copy is served without asking again.
        started = time.monotonic()
        page = httpx.get(f"{mirror.url}/pypi/latest/simple/mir-app/", timeout=30)
        assert time.monotonic() - started < 0.5
        assert page.status_code == 200 and page.headers.get("warning") == STALE
        assert hole.accepted == asked
        assert httpx.get(cached_file, timeout=5).status_code == 200


# Prefetch and other mirror sources


def test_prefetch_then_install_with_the_upstream_down(peers: Peers, tmp_path: Path, client_env: dict[str, str]) -> None:
    dists = chain(tmp_path / "dists", "pypiserver")
    upstream = peers.pypiserver(dists)
    mirror = peers.mirror(upstream.index)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("mir-app\n")
    result = mirror.cli("mirror", "prefetch", "-r", str(requirements), "--address", mirror.url)
    fetched = {p.rsplit("/", 1)[-1] for p in upstream.requests() if "/packages/" in p}
    for needed in ("mir_app-1.0-py3-none-any.whl", "mir_lib-2.0-py3-none-any.whl", "mir_util-0.1.tar.gz"):
        assert needed in fetched, f"{needed} was not prefetched:\n{result.stdout}\n{result.stderr}"
    assert "mir_leaf-1.0-py3-none-any.whl" in fetched, "dependencies of an sdist are prefetched too"

    # Names on the command line work the same way.
    mirror.cli("mirror", "prefetch", "mir-lib==1.0", "--address", mirror.url)
    assert any(p.endswith("mir_lib-1.0-py3-none-any.whl") for p in upstream.requests())

    upstream.stop()
    for tag, install in (("uv", uv_install), ("pip", pip_install)):
        client = fresh_client(tmp_path, client_env, f"offline-{tag}")
        install(client, mirror.index, "mir-app")
        assert installed(client.venv, client.env) == EXPECTED


def test_source_with_its_own_upstream(peers: Peers, tmp_path: Path, client_env: dict[str, str]) -> None:
    """`source create --type pypi --upstream` mirrors another index, served by whichever repository subscribes."""
    first = peers.pypiserver([make_wheel(tmp_path / "a", "only-first", "1.0")])
    second = peers.packyard([make_wheel(tmp_path / "b", "only-second", "1.0")])
    mirror = peers.mirror(first.index)
    mirror.cli("source", "create", "--name", "second-up", "--type", "pypi", "--upstream", second.index)
    mirror.cli("repo", "create", "--name", "both")
    mirror.cli("repo", "subscribe", "--repo", "both", "--source", "pypi")
    mirror.cli("repo", "subscribe", "--repo", "both", "--source", "second-up")
    mirror.wait_synced()
    client = fresh_client(tmp_path, client_env, "both")
    uv_install(client, f"{mirror.url}/both/latest/simple/", "only-first", "only-second")
    assert installed(client.venv, client.env) == {"only-first": "1.0", "only-second": "1.0"}
    assert any(p.endswith("/only-second/") for p in second.requests())
    # The default repository does not serve the second source.
    assert httpx.get(f"{mirror.url}/pypi/latest/simple/only-second/", timeout=30).status_code == 404


# Hostile upstreams

HOSTILE = '"><script>window.pwned = 1</script>'
NOT_HEX = (HOSTILE + "0" * 64)[:64]  # 64 characters: what the length check alone let through
HOSTILE_METADATA = '"><img src=x onerror="window.pwned = 2">'


def hostile_pages(good: str) -> dict[str, tuple[str, bytes]]:
    """An HTML page and a PEP 691 JSON page, each listing a file with a good (upper-case) sha256 but a hostile
    `.metadata` hash, a file whose sha256 is 64 characters of markup, and one whose sha256 is short markup."""
    html_links = [
        (f"evil_html-1.0-py3-none-any.whl#sha256={good}", f"sha256={HOSTILE_METADATA}"),
        (f"evil_html-2.0-py3-none-any.whl#sha256={NOT_HEX}", None),
        (f"evil_html-3.0-py3-none-any.whl#sha256={HOSTILE}", None),
    ]
    anchors = "\n".join(
        f'<a href="/files/{escape(href)}"'
        + (f' data-core-metadata="{escape(meta)}"' if meta else "")
        + f">{href.split('#')[0]}</a><br>"
        for href, meta in html_links
    )
    files = [
        {"hashes": {"sha256": good}, "core-metadata": {"sha256": HOSTILE_METADATA}},
        {"hashes": {"sha256": NOT_HEX}},
        {"hashes": {"sha256": HOSTILE}, "core-metadata": True},
    ]
    for n, entry in enumerate(files, start=1):
        entry.update(filename=f"evil_json-{n}.0-py3-none-any.whl", url=f"/files/evil_json-{n}.0-py3-none-any.whl")
    page = {"meta": {"api-version": "1.1"}, "name": "evil-json", "files": files}
    return {
        "/simple/evil-html/": ("text/html", f"<!DOCTYPE html><html><body>\n{anchors}\n</body></html>".encode()),
        "/simple/evil-json/": (JSON, json.dumps(page).encode()),
    }


def test_hashes_that_are_not_hex_never_reach_a_page_or_the_database(peers: Peers) -> None:
    good = hashlib.sha256(b"evil").hexdigest().upper()
    mirror = peers.mirror(peers.static(hostile_pages(good)).index)
    for project in ("evil-html", "evil-json"):
        page = page_json(mirror, project)
        stem = project.replace("-", "_")
        assert [(f["filename"], f["hashes"], f["core-metadata"]) for f in page["files"]] == [
            (f"{stem}-1.0-py3-none-any.whl", {"sha256": good.lower()}, False)
        ]
        html = httpx.get(f"{mirror.url}/pypi/latest/simple/{project}/", headers={"Accept": "text/html"}, timeout=30)
        for text in (html.text, json.dumps(page)):
            assert "script" not in text and "onerror" not in text and "pwned" not in text
        assert f"#sha256={good.lower()}" in html.text and "data-core-metadata" not in html.text
    engine = sqlalchemy.create_engine(mirror.sql_url)
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text("SELECT filename, sha256, metadata_sha256 FROM files")).all()
    engine.dispose()
    assert sorted(rows) == [
        ("evil_html-1.0-py3-none-any.whl", good.lower(), None),
        ("evil_json-1.0-py3-none-any.whl", good.lower(), None),
    ]
    log = mirror.log()
    assert "evil_html-2.0-py3-none-any.whl: sha256 '\"><script>window.pwned = 1</script>0000" in log
    assert "evil_json-1.0-py3-none-any.whl: `.metadata` sha256 '\"><img src=x onerror=" in log
