"""Publishing on two nodes of one PostgreSQL database and one blob store (issue 16): a deploy task started on one
node is polled to its end on the other, and a redeploy, a variable change, a rollback or a deletion on one node
reaches the other node, which already serves the content, within a couple of seconds. A task whose node was killed
reads as failed elsewhere."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.browser import web_user
from tests.cluster import Cluster, cluster
from tests.publishing import Publishing, manifest, setup_publishing, tarball

# Plain ASGI (uvicorn is the launcher's own package): it answers with its version and its GREETING variable.
APP = """
import json, os, time
VERSION = {version}
time.sleep({sleep})  # a start that takes this long

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({{"type": message["type"] + ".complete"}})
            if message["type"] == "lifespan.shutdown":
                return
    body = json.dumps({{"version": VERSION, "greeting": os.environ.get("GREETING", "")}}).encode()
    await send({{"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}})
    await send({{"type": "http.response.body", "body": body}})
"""
PASSWORD = "correct horse battery"
FOLLOW_DEADLINE = 10.0  # seconds a node may take to follow the other's change; it takes about one


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Publishing, Publishing]]:
    """Two nodes, and alice's key on each: `a` is where changes are made, `b` the node that follows them."""
    with cluster(tmp_path_factory.mktemp("cluster")) as group:
        a = setup_publishing(group.nodes[0], tmp_path_factory.mktemp("home-a"), wheels="echo")
        b = Publishing(group.nodes[1], a.key, a.home)
        yield group, a, b


def bundle(version: int, sleep: float = 0) -> bytes:
    return tarball(
        {
            "manifest.json": manifest(),
            "requirements.txt": b"websockets==17.4\n",
            "app.py": APP.format(version=version, sleep=sleep).encode(),
        }
    )


def upload(pub: Publishing, guid: str, archive: bytes) -> str:
    uploaded = pub.api("POST", f"/v1/content/{guid}/bundles", content=archive)
    assert uploaded.status_code == 200, uploaded.text
    return str(uploaded.json()["id"])


def start_deploy(pub: Publishing, guid: str, bundle_id: str) -> str:
    started = pub.api("POST", f"/v1/content/{guid}/deploy", json={"bundle_id": bundle_id})
    assert started.status_code == 202, started.text
    return str(started.json()["task_id"])


def poll(pub: Publishing, task_id: str) -> tuple[dict[str, Any], int]:
    """rsconnect's loop (`first` = the last answer's `last`, `wait=1`): the whole task, and how many polls."""
    lines: list[str] = []
    first, polls = 0, 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        answer = pub.api("GET", f"/v1/tasks/{task_id}", params={"first": first, "wait": 1})
        assert answer.status_code == 200, answer.text
        task = answer.json()
        assert set(task) == {"id", "output", "result", "finished", "code", "error", "last"}
        polls += 1
        lines += task["output"]
        first = task["last"]
        if task["finished"]:
            return {**task, "output": lines}, polls
    raise AssertionError(f"task {task_id} did not finish in 180 s")


def serves(pub: Publishing, guid: str) -> dict[str, Any] | int:
    response = pub.get(f"/content/{guid}/")
    return response.json() if response.status_code == 200 else response.status_code


def until(check: Callable[[], bool], what: str, deadline: float = FOLLOW_DEADLINE) -> float:
    """Seconds until `check()` holds, polled every 0.1 s; fails after `deadline` seconds."""
    began = time.monotonic()
    while time.monotonic() - began < deadline:
        if check():
            return time.monotonic() - began
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {deadline} s")


def deployed(a: Publishing, guid: str, archive: bytes) -> str:
    """Upload and deploy on node a, to the end of the task; the bundle's id."""
    bundle_id = upload(a, guid, archive)
    task, _ = poll(a, start_deploy(a, guid, bundle_id))
    assert task["code"] == 0, task
    return bundle_id


@pytest.fixture(scope="module")
def content(nodes: tuple[Cluster, Publishing, Publishing]) -> str:
    _, a, _ = nodes
    created = a.api("POST", "/v1/content", json={"name": "follows"})
    assert created.status_code == 200, created.text
    return str(created.json()["guid"])


def test_a_deploy_on_one_node_is_polled_to_its_end_on_the_other(
    nodes: tuple[Cluster, Publishing, Publishing], content: str
) -> None:
    _, a, b = nodes
    task_id = start_deploy(a, content, upload(a, content, bundle(1)))
    on_b, polls = poll(b, task_id)
    on_a, _ = poll(a, task_id)
    assert on_b["finished"] and on_b["code"] == 0 and on_b["error"] == "", "\n".join(on_b["output"])
    assert on_b["output"] == on_a["output"] and on_b["last"] == on_a["last"] == len(on_a["output"])
    assert any("is active" in line for line in on_b["output"]), on_b["output"]
    assert polls > 1  # it followed the task while it ran, not only its end
    assert on_a["output"][-1] in b.api("GET", f"/v1/content/{content}/log").json()["deploy"]  # b's logs show a's deploy
    # Both nodes serve it: b starts it from the database on its first request.
    assert serves(a, content) == serves(b, content) == {"version": 1, "greeting": ""}
    # The versions page on b, to an administrator signed in there, shows the task a ran.
    web_user(a.server, "ada", "admin", PASSWORD)
    with httpx.Client(base_url=b.server.url) as browser:
        token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/login").text)
        assert token is not None
        form = {"username": "ada", "password": PASSWORD, "csrf_token": token.group(1), "next": "/"}
        assert browser.post("/login", data=form).status_code == 303
        page = browser.get(f"/connect/apps/{content}/versions", params={"task": task_id})
    assert page.status_code == 200 and "Activated" in page.text, page.text
    assert html.escape(on_a["output"][-1], quote=False) in page.text


def test_a_redeploy_on_one_node_switches_the_other(nodes: tuple[Cluster, Publishing, Publishing], content: str) -> None:
    _, a, b = nodes
    assert serves(b, content) == {"version": 1, "greeting": ""}  # b runs version 1
    deployed(a, content, bundle(2))
    assert serves(a, content)["version"] == 2  # type: ignore[index]
    seconds = until(lambda: serves(b, content) == {"version": 2, "greeting": ""}, "node b serving version 2")
    assert seconds < 5, seconds
    log = (b.server.data_dir / "apps" / content / "app.log").read_text()
    assert "activated on another node" in log, log


def test_a_variable_set_on_one_node_reaches_the_app_on_the_other(
    nodes: tuple[Cluster, Publishing, Publishing], content: str
) -> None:
    _, a, b = nodes
    changed = a.api("PATCH", f"/v1/content/{content}/environment", json=[{"name": "GREETING", "value": "hi"}])
    assert changed.status_code == 200, changed.text
    assert serves(a, content) == {"version": 2, "greeting": "hi"}
    until(lambda: serves(b, content) == {"version": 2, "greeting": "hi"}, "node b's app seeing GREETING=hi")


def test_a_rollback_on_one_node_reaches_the_other(nodes: tuple[Cluster, Publishing, Publishing], content: str) -> None:
    _, a, b = nodes
    first = min(int(row["id"]) for row in a.api("GET", f"/v1/content/{content}/bundles").json())
    task, _ = poll(a, start_deploy(a, content, str(first)))
    assert task["code"] == 0, task
    until(lambda: serves(b, content) == {"version": 1, "greeting": "hi"}, "node b serving the rolled-back version 1")


def test_a_draft_deployed_on_one_node_is_verified_and_activated_on_the_other(
    nodes: tuple[Cluster, Publishing, Publishing], content: str
) -> None:
    """rsconnect's flow behind a balancer without stickiness: the draft deploys on a, its verification and its
    activation land on b."""
    _, a, b = nodes
    draft = upload(a, content, bundle(3))
    started = a.api("POST", f"/v1/content/{content}/deploy", json={"bundle_id": draft, "activate": False})
    task, _ = poll(a, str(started.json()["task_id"]))
    assert task["code"] == 0, task
    assert b.get(f"/content/{content}/_bundle{draft}/").json()["version"] == 3
    assert serves(b, content)["version"] == 1  # type: ignore[index]  # the active version is unchanged
    task, _ = poll(b, start_deploy(b, content, draft))
    assert task["code"] == 0 and any("Activating bundle" in line for line in task["output"]), task
    assert serves(b, content)["version"] == 3  # type: ignore[index]
    until(lambda: serves(a, content) == {"version": 3, "greeting": "hi"}, "node a serving the activated draft")
    # Once active, the bundle is no one's draft: a superseded bundle's URL serves nothing on either node.
    first = min(int(row["id"]) for row in a.api("GET", f"/v1/content/{content}/bundles").json())
    assert (
        a.get(f"/content/{content}/_bundle{first}/").status_code
        == b.get(f"/content/{content}/_bundle{first}/").status_code
        == 404
    )


def test_a_static_site_redeployed_on_one_node_switches_on_the_other(
    nodes: tuple[Cluster, Publishing, Publishing],
) -> None:
    _, a, b = nodes
    guid = str(a.api("POST", "/v1/content", json={"name": "pages"}).json()["guid"])

    def site(text: str) -> bytes:
        page = manifest("static", None, metadata={"appmode": "static", "primary_html": "index.html"})
        return tarball({"manifest.json": page, "index.html": f"<p>{text}</p>".encode()})

    first = deployed(a, guid, site("first"))
    # A caller who may not see it makes node b neither query nor extract: the access check comes first.
    for path in (f"/content/{guid}/", f"/content/{guid}/_bundle{first}/", f"/content/{guid}/_bundle999/"):
        assert httpx.get(b.server.url + path, timeout=30).status_code == 401
    assert not (b.server.data_dir / "apps" / guid).exists()
    assert "first" in b.get(f"/content/{guid}/").text
    deployed(a, guid, site("second"))
    until(lambda: "second" in b.get(f"/content/{guid}/").text, "node b serving the second site")


def test_content_deleted_on_one_node_is_gone_from_the_other(nodes: tuple[Cluster, Publishing, Publishing]) -> None:
    _, a, b = nodes
    guid = str(a.api("POST", "/v1/content", json={"name": "goes"}).json()["guid"])
    deployed(a, guid, bundle(7))
    assert serves(b, guid) == {"version": 7, "greeting": ""}
    assert a.api("DELETE", f"/v1/content/{guid}").status_code == 200
    until(lambda: serves(b, guid) == 404, "node b answering 404")
    until(lambda: not (b.server.data_dir / "apps" / guid).exists(), "node b's copy of its bundles leaving the disk")


def test_a_task_of_a_killed_node_reads_as_failed_on_the_other(nodes: tuple[Cluster, Publishing, Publishing]) -> None:
    group, a, b = nodes
    guid = str(a.api("POST", "/v1/content", json={"name": "orphan"}).json()["guid"])
    task_id = start_deploy(a, guid, upload(a, guid, bundle(1, sleep=120)))  # its app never answers in time

    def launching() -> bool:
        task = b.api("GET", f"/v1/tasks/{task_id}").json()
        return any("Launching" in line for line in task["output"])

    until(launching, "node b seeing the deploy reach its start", deadline=120)
    group.kill(0)
    began = time.monotonic()
    task, _ = poll(b, task_id)
    assert task["finished"] and task["code"] == 1, task
    assert "stopped before the task finished" in task["error"] and "deploy again" in task["error"], task["error"]
    assert time.monotonic() - began < 15
    group.restart(0)  # the node comes back; the task stays failed
    again = Publishing(group.nodes[0], a.key, a.home).api("GET", f"/v1/tasks/{task_id}").json()
    assert again["finished"] and again["code"] == 1
