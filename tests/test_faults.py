"""Faults of two nodes behind HAProxy (issue 16, docs/SCALING.md): `kill -9` of a node under concurrent uploads,
installs and app requests; a PostgreSQL restart mid-load (through a TCP forwarder the test cuts, since the machine's
PostgreSQL serves other tests); and an object store outage. Each ends in no error where the balancer can retry, in
Packyard's own 503 naming what is down where it cannot, never in a half-visible file, and in recovery without
restarting Packyard."""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from packyard.repository.names import normalize
from tests.balancer import Balancer, config, haproxy, haproxy_bin
from tests.cluster import Cluster, cluster
from tests.conftest import BIN, PG_ADMIN_URL, ROOT, Server, run, uv_bin
from tests.dists import make_wheel
from tests.publishing import Publishing, copy_app, setup_publishing
from tests.s3 import MotoS3
from tests.tcp_proxy import Forwarder, forwarder

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
DATABASE_DOWN = "The database is unavailable (cannot connect); try again shortly."
# What an upload under way when the connections were reset hears instead.
DATABASE_LOST = "The database is unavailable (connection lost); try again shortly."
STORE_DOWN = "The blob store is unavailable (bucket `"
_LINK = re.compile(r'href="([^"#]+)#sha256=([0-9a-f]{64})"')


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Fleet:
    cluster: Cluster
    balancer: Balancer
    database: Forwarder
    pub: Publishing
    guid: str
    token: str

    @property
    def index(self) -> str:
        return f"{self.balancer.url}/pypi/latest/simple/"

    @property
    def upload_url(self) -> str:
        return f"{self.balancer.url}/upload/pypi/local-python-src"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Two nodes reaching PostgreSQL through a forwarder, a static site deployed, two packages to install, and
    HAProxy in front."""
    root = tmp_path_factory.mktemp("faults")
    postgresql = make_url(PG_ADMIN_URL)
    with (
        forwarder(postgresql.host or "127.0.0.1", postgresql.port or 5432) as database,
        cluster(root, 2, database_port=database.port) as group,
    ):
        first = group.nodes[0]
        pub = setup_publishing(first, root / "home", wheels=None)
        app = copy_app("html-site", root / "apps")
        pub.deploy("html", app)
        seed = root / "seed"
        make_wheel(seed, "fault-base", "1.0")
        make_wheel(seed, "fault-app", "1.0", requires=["fault-base"])
        first.twine(*sorted(seed.iterdir()))
        with haproxy(root / "haproxy", [node.port for node in group.nodes]) as balancer:
            yield Fleet(group, balancer, database, pub, pub.record(app)["app_guid"], first.upload_token)


def post_upload(url: str, token: str, wheel: Path) -> httpx.Response:
    """One upload as twine sends it, for load loops where a process per file would cost more than the server."""
    data = wheel.read_bytes()
    name, version = wheel.name.split("-")[:2]
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name.replace("_", "-"),
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": sha256(data),
    }
    return httpx.post(url, data=fields, files={"content": (wheel.name, data)}, auth=("__token__", token), timeout=60)


def twine(fleet: Fleet) -> list[str]:
    """`twine upload` through the balancer, but for the files."""
    command = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
    return [*command, "--repository-url", fleet.upload_url, "-u", "__token__", "-p", fleet.token]


def uv_publish(fleet: Fleet) -> list[str]:
    return [str(uv_bin()), "publish", "--publish-url", fleet.upload_url, "--token", fleet.token]


def listed(base_url: str, project: str) -> dict[str, str]:
    """The files a project's page lists, by filename, with their sha256; empty if there is no page."""
    page = httpx.get(f"{base_url}/pypi/latest/simple/{normalize(project)}/", headers=JSON, timeout=30)
    if page.status_code == 404:
        return {}
    assert page.status_code == 200, page.text
    return {item["filename"]: item["hashes"]["sha256"] for item in page.json()["files"]}


def wait_listed(base_url: str, project: str, expected: dict[str, str], seconds: float = 10) -> None:
    """Another node learns of an upload from the change log within half a second."""
    deadline = time.monotonic() + seconds
    while (seen := listed(base_url, project)) != expected:
        assert time.monotonic() < deadline, f"{project} on {base_url}: {seen}, expected {expected}"
        time.sleep(0.1)


def check_every_file(base_url: str, projects: Iterable[str] = ()) -> int:
    """Every file linked on every simple page (HTML, as pip reads it) downloads whole with its `#sha256=`: nothing
    is listed whose bytes are missing or wrong. The root page names new projects within a few seconds (it is
    re-rendered in a pause between uploads), so it is polled until it has `projects`. Returns how many files were
    checked."""
    wanted, deadline = {normalize(name) for name in projects}, time.monotonic() + 15
    while True:
        root = httpx.get(f"{base_url}/pypi/latest/simple/", headers=JSON, timeout=30)
        assert root.status_code == 200, root.text
        missing = wanted - {normalize(project["name"]) for project in root.json()["projects"]}
        if not missing:
            break
        assert time.monotonic() < deadline, f"the root page of {base_url} does not name {sorted(missing)}"
        time.sleep(0.2)
    checked = 0
    for project in root.json()["projects"]:
        page_url = f"{base_url}/pypi/latest/simple/{normalize(project['name'])}/"
        page = httpx.get(page_url, headers={"Accept": "text/html"}, timeout=30)
        assert page.status_code == 200, f"{page_url}: {page.status_code} {page.text}"
        for href, digest in _LINK.findall(page.text):
            body = httpx.get(httpx.URL(page_url).join(href), timeout=60)
            assert body.status_code == 200, f"{href} is listed but answers {body.status_code}: {body.text[:300]}"
            assert sha256(body.content) == digest, f"{href} is listed but its bytes are not the ones the page names"
            checked += 1
    return checked


def health(node: Server) -> httpx.Response:
    return httpx.get(f"{node.url}/__health__", timeout=10)


def wait_health(node: Server, status: int, failing: str = "", seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        answer = health(node)
        if answer.status_code == status and (not failing or answer.json()["checks"][failing]["status"] == "failing"):
            return
        assert time.monotonic() < deadline, f"{node.url}/__health__ stayed {answer.status_code}: {answer.text}"
        time.sleep(0.1)


# -- kill -9 under load ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    ok: bool
    detail: str = ""
    wheel: Path | None = None
    finished: float = field(default_factory=time.monotonic)


def test_kill_9_of_a_node_under_load_loses_no_acknowledged_upload(
    fleet: Fleet, tmp_path: Path, client_env: dict[str, str]
) -> None:
    """About 100 concurrent operations through HAProxy (40 uploads by twine and `uv publish`, 12 installs by pip and
    uv, 48 page and app requests); once 10 uploads were acknowledged, the node that serves the app (HAProxy keeps
    `/content/` on one node per client address) gets SIGKILL, so the app's requests fail over too."""
    lb = fleet.balancer
    serving = httpx.get(f"{lb.url}/content/{fleet.guid}/", headers=fleet.pub.headers, timeout=30)
    victim = int(serving.headers["x-packyard-node"].removeprefix("node")) - 1
    dead, survivor = fleet.cluster.nodes[victim], fleet.cluster.nodes[1 - victim]
    wheels = [make_wheel(tmp_path / "up", f"fault-up-{i:02d}", "1.0", payload=f"# {i}\n".encode()) for i in range(40)]

    def upload(wheel: Path, by_uv: bool) -> Outcome:
        command = uv_publish(fleet) if by_uv else twine(fleet)
        result = run([*command, str(wheel)], client_env, check=False)
        return Outcome("upload", result.returncode == 0, result.stdout + result.stderr, wheel)

    def install(n: int) -> Outcome:
        target = tmp_path / f"target-{n}"
        if n % 2:
            command = [str(uv_bin()), "pip", "install", "--no-cache", "--python", sys.executable]
        else:
            command = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-compile"]
        result = run(
            [*command, "--target", str(target), "--index-url", fleet.index, "fault-app"], client_env, check=False
        )
        ok = result.returncode == 0 and (target / "fault_app").is_dir() and (target / "fault_base").is_dir()
        return Outcome("install", ok, result.stdout + result.stderr)

    def read(n: int) -> Outcome:
        url, headers = (
            (f"{lb.url}/content/{fleet.guid}/", fleet.pub.headers) if n % 2 else (f"{fleet.index}fault-app/", JSON)
        )
        try:
            answer = httpx.get(url, headers=headers, timeout=60)
        except httpx.TransportError:
            # An answer cut off after its headers left the dead node is one no balancer can retry; clients (pip, uv)
            # retry those themselves. A 5xx from the balancer is not retried here: that one HAProxy should have.
            answer = httpx.get(url, headers=headers, timeout=60)
        if n % 2:
            ok = answer.status_code == 200 and "Static site, version 1" in answer.text
        else:
            ok = answer.status_code == 200 and len(answer.json()["files"]) == 1
        return Outcome("read", ok, f"{answer.status_code} {answer.text[:200]}")

    operations: list[Callable[[], Outcome]] = [
        *(lambda w=w, i=i: upload(w, i % 2 == 0) for i, w in enumerate(wheels)),
        *(lambda n=n: install(n) for n in range(12)),
        *(lambda n=n: read(n) for n in range(48)),
    ]
    random.Random(16).shuffle(operations)
    outcomes: list[Outcome] = []
    acknowledged = threading.Semaphore(0)

    def staggered(index: int, operation: Callable[[], Outcome]) -> Outcome:
        time.sleep(index * 0.06)  # the load spreads over six seconds, so the kill lands in its middle
        outcome = operation()
        outcomes.append(outcome)
        if outcome.kind == "upload" and outcome.ok:
            acknowledged.release()
        return outcome

    with ThreadPoolExecutor(len(operations)) as pool:
        futures = [pool.submit(staggered, i, op) for i, op in enumerate(operations)]
        for _ in range(10):
            assert acknowledged.acquire(timeout=120), "fewer than 10 uploads were acknowledged before the kill"
        fleet.cluster.kill(victim)
        killed_at = time.monotonic()
        done_at_kill = len(outcomes)
        results = [future.result() for future in futures]

    assert 10 <= done_at_kill <= len(operations) - 10, f"the kill came at {done_at_kill} of {len(operations)}"
    after_kill = [o for o in results if o.finished > killed_at]
    assert sum(o.kind == "upload" for o in after_kill) >= 5, "too few uploads ran after the kill to show anything"
    failed = [f"{o.kind}: {o.detail[-1500:]}" for o in results if not o.ok and o.kind != "upload"]
    assert failed == [], "installs and reads are GETs the balancer retries on the other node:\n" + "\n".join(failed)

    # Before any upload is sent again: each acknowledged one is listed with its bytes, an unacknowledged one is
    # listed whole or not at all, and nothing listed is missing or wrong.
    for outcome in results:
        if outcome.kind == "upload" and outcome.wheel is not None:
            whole = {outcome.wheel.name: sha256(outcome.wheel.read_bytes())}
            assert listed(survivor.url, outcome.wheel.name.split("-")[0]) in ([whole] if outcome.ok else [{}, whole])
    check_every_file(survivor.url)

    # An upload that got no answer is the client's to send again: the balancer has taken the node out by now.
    lb.wait_state(f"node{victim + 1}", "DOWN")
    unacknowledged = [o.wheel for o in results if o.kind == "upload" and not o.ok]
    for wheel in unacknowledged:
        assert wheel is not None
        resent = post_upload(fleet.upload_url, fleet.token, wheel)
        assert resent.status_code == 200, f"resending {wheel.name}: {resent.status_code} {resent.text}"

    # Every upload, acknowledged at once or resent, is there once with its own bytes, on the node that survived.
    for wheel in wheels:
        assert listed(survivor.url, wheel.name.split("-")[0]) == {wheel.name: sha256(wheel.read_bytes())}
    names = [wheel.name.split("-")[0] for wheel in wheels]
    assert check_every_file(survivor.url, names) >= len(wheels) + 2
    assert check_every_file(lb.url, names) >= len(wheels) + 2

    # The node comes back on its port and data directory, HAProxy takes it in, and it serves what it missed.
    fleet.cluster.restart(victim)
    lb.wait_state(f"node{victim + 1}", "UP")
    late = wheels[-1]
    assert listed(dead.url, late.name.split("-")[0]) == {late.name: sha256(late.read_bytes())}
    # HAProxy sends it requests again (polled: on a loaded machine a check can still fail once after the start).
    deadline = time.monotonic() + 30
    while (node := httpx.get(f"{fleet.index}fault-app/", timeout=10).headers["x-packyard-node"]) != f"node{victim + 1}":
        assert time.monotonic() < deadline, f"HAProxy sent no request to node{victim + 1} after its restart ({node})"
        time.sleep(0.05)
    assert check_every_file(dead.url, names) >= len(wheels) + 2


# -- PostgreSQL restart ------------------------------------------------------------------------------------------


def test_a_postgresql_restart_mid_load_is_a_clear_503_and_recovers_without_a_restart(
    fleet: Fleet, tmp_path: Path, client_env: dict[str, str]
) -> None:
    lb, nodes = fleet.balancer, fleet.cluster.nodes
    processes = [node.process for node in nodes]
    for node in nodes:  # each node looks the files up once, as installs before the outage would have
        for project in ("fault-app", "fault-base"):
            page = f"{node.index}{project}/"
            for href, _ in _LINK.findall(httpx.get(page, timeout=10).text):
                for suffix in ("", ".metadata"):
                    assert httpx.get(httpx.URL(page).join(href + suffix), timeout=10).status_code == 200

    # Uploads through the balancer, all along: before the cut, during it, and after it heals.
    answers: list[tuple[Path, int, str]] = []
    stop = threading.Event()

    def load() -> None:
        for i in range(400):  # bounded; `stop` ends it long before
            if stop.is_set():
                return
            wheel = make_wheel(tmp_path / "load", f"fault-db-{i:03d}", "1.0")
            try:
                answer = post_upload(fleet.upload_url, fleet.token, wheel)
                answers.append((wheel, answer.status_code, answer.text))
            except httpx.HTTPError as exc:  # no answer at all: counted, and the assertions below refuse it
                answers.append((wheel, 0, repr(exc)))
            time.sleep(0.05)

    def uploaded(status: int) -> int:
        return sum(code == status for _, code, _ in answers)

    def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.05)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        wait_for(lambda: uploaded(200) >= 3, "the load uploaded nothing before the cut")
        try:
            fleet.database.cut()  # every connection reset, new ones refused: a restart, as the nodes see it
            for node in nodes:
                wait_health(node, 503, failing="database")
                assert health(node).json()["checks"]["storage"]["status"] == "ok"
            lb.wait_state("node1", "DOWN")
            lb.wait_state("node2", "DOWN")

            # Through the balancer, on the fallback servers: Packyard's own answer, saying what is down.
            refused_wheel = make_wheel(tmp_path / "down", "fault-during-outage", "1.0")
            refused = post_upload(fleet.upload_url, fleet.token, refused_wheel)
            assert (refused.status_code, refused.text) == (503, DATABASE_DOWN + "\n")
            assert refused.headers["retry-after"] == "5"
            assert refused.reason_phrase == DATABASE_DOWN  # what twine prints
            by_twine = run([*twine(fleet), str(refused_wheel)], client_env, check=False)
            assert by_twine.returncode != 0 and "503" in by_twine.stdout + by_twine.stderr
            assert "The database is unavailable" in " ".join((by_twine.stdout + by_twine.stderr).split())
            api = httpx.get(f"{lb.url}/__api__/v1/content", headers=fleet.pub.headers, timeout=30)
            assert (api.status_code, api.json()["error"]) == (503, DATABASE_DOWN)
            unknown = httpx.get(f"{fleet.index}never-uploaded/", timeout=30)
            assert (unknown.status_code, unknown.text) == (503, DATABASE_DOWN + "\n")
            # What a node holds in memory still answers: installs of what was there go on during the outage.
            assert httpx.get(f"{fleet.index}fault-app/", timeout=30).status_code == 200
            command = [str(uv_bin()), "pip", "install", "--no-cache", "--python", sys.executable]
            command += ["--target", str(tmp_path / "target"), "--index-url", fleet.index, "fault-app"]
            installed = run(command, client_env, check=False)
            assert installed.returncode == 0, installed.stderr
            wait_for(lambda: uploaded(503) >= 3, "the load saw no 503 during the outage")
        finally:
            fleet.database.restore()
        for node in nodes:
            wait_health(node, 200)
        lb.wait_state("node1", "UP")
        lb.wait_state("node2", "UP")
        healed = uploaded(200)
        wait_for(lambda: uploaded(200) >= healed + 3, "uploads did not succeed again after the database came back")
    finally:
        stop.set()
        loader.join(60)

    assert all(
        node.process is process and process.poll() is None for node, process in zip(nodes, processes, strict=True)
    )
    odd = [(wheel.name, code, text) for wheel, code, text in answers if code not in (200, 503)]
    assert odd == [], "every upload is either stored (200) or refused with a clear 503"
    unclear = {text for _, code, text in answers if code == 503} - {DATABASE_DOWN + "\n", DATABASE_LOST + "\n"}
    assert unclear == set()
    # A 200 is stored and listed on both nodes; a 503 may have committed (the connection can break during COMMIT),
    # but is then listed whole: never a row without its bytes.
    for wheel, code, _ in answers:
        project = wheel.name.split("-")[0]
        whole = {wheel.name: sha256(wheel.read_bytes())}
        if code == 200:
            for node in nodes:
                wait_listed(node.url, project, whole)
        else:
            assert listed(lb.url, project) in ({}, whole)
    check_every_file(lb.url, [wheel.name.split("-")[0] for wheel, code, _ in answers if code == 200])
    assert post_upload(fleet.upload_url, fleet.token, refused_wheel).status_code == 200


# -- object store outage -----------------------------------------------------------------------------------------


def test_an_object_store_outage_is_a_clear_503_and_leaves_nothing_half_visible(moto_s3: MotoS3, tmp_path: Path) -> None:
    """tests/test_s3_storage.py has one node's outage; here two nodes share the bucket behind HAProxy."""
    bucket = moto_s3.new_bucket()
    with (
        cluster(tmp_path / "nodes", 2, storage=moto_s3.env(bucket)) as group,
        haproxy(tmp_path / "haproxy", [node.port for node in group.nodes]) as lb,
    ):
        token = group.nodes[0].upload_token
        upload_url = f"{lb.url}/upload/pypi/local-python-src"
        seed = make_wheel(tmp_path / "seed", "fault-s3-seed", "1.0")
        assert post_upload(upload_url, token, seed).status_code == 200
        file_url = httpx.URL(f"{lb.url}/pypi/latest/simple/fault-s3-seed/").join(
            _LINK.findall(httpx.get(f"{lb.url}/pypi/latest/simple/fault-s3-seed/", timeout=10).text)[0][0]
        )
        wheels = [make_wheel(tmp_path / "up", f"fault-s3-{i}", "1.0") for i in range(10)]
        processes = [node.process for node in group.nodes]
        moto_s3.stop()
        try:
            for node in group.nodes:
                wait_health(node, 503, failing="storage")
            lb.wait_state("node1", "DOWN")
            lb.wait_state("node2", "DOWN")
            with ThreadPoolExecutor(len(wheels)) as pool:
                refused = list(pool.map(lambda w: post_upload(upload_url, token, w), wheels))
            assert [r.status_code for r in refused] == [503] * len(wheels), [r.text for r in refused]
            assert all(STORE_DOWN in r.text and "try again shortly" in r.text for r in refused)
            download = httpx.get(file_url, timeout=60)
            assert download.status_code == 503 and STORE_DOWN in download.text
            # The database is up: pages answer, and none lists a refused upload.
            assert listed(lb.url, "fault-s3-seed") == {seed.name: sha256(seed.read_bytes())}
            assert all(listed(lb.url, w.name.split("-")[0]) == {} for w in wheels)
        finally:
            moto_s3.start()
        for node in group.nodes:
            wait_health(node, 200)
        lb.wait_state("node1", "UP")
        lb.wait_state("node2", "UP")
        with ThreadPoolExecutor(len(wheels)) as pool:
            accepted = list(pool.map(lambda w: post_upload(upload_url, token, w), wheels))
        assert [r.status_code for r in accepted] == [200] * len(wheels), [r.text for r in accepted]
        for wheel in wheels:
            for node in group.nodes:
                wait_listed(node.url, wheel.name.split("-")[0], {wheel.name: sha256(wheel.read_bytes())})
        assert check_every_file(lb.url, [wheel.name.split("-")[0] for wheel in wheels]) == len(wheels) + 1
        assert all(
            node.process is process and process.poll() is None
            for node, process in zip(group.nodes, processes, strict=True)
        )


def test_the_docs_quote_the_configuration_the_tests_run(tmp_path: Path) -> None:
    """docs/SCALING.md gives operators this file; HAProxy must accept it, and it must stay the one tested here."""
    example = config(8000, [8001, 8002], 8404)
    assert f"```\n{example}```" in (ROOT / "docs" / "SCALING.md").read_text()
    (tmp_path / "haproxy.cfg").write_text(example)
    checked = subprocess.run([haproxy_bin(), "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
