"""Websockets and sticky sessions behind HAProxy (issue 16, docs/SCALING.md "Load balancer"): an app process holds
a websocket session's state, so one client's requests to `/content/` stay on one node while the rest of Packyard
is balanced over both, and when that node dies the client's next session opens on the other."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from websockets.sync.client import connect

from tests.balancer import Balancer, haproxy
from tests.cluster import Cluster, cluster
from tests.publishing import Publishing, copy_app, setup_publishing


@dataclass
class Sticky:
    cluster: Cluster
    balancer: Balancer
    pub: Publishing
    guid: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.pub.key}"}

    def open_socket(self) -> tuple[str, dict[str, object]]:
        """One websocket session with the echo app through the balancer: the node that served it, and what the app
        saw of its handshake."""
        url = self.balancer.url.replace("http://", "ws://") + f"/content/{self.guid}/ws"
        with connect(url, additional_headers=self.headers, open_timeout=60) as socket:
            assert socket.response is not None
            node = socket.response.headers["X-Packyard-Node"]
            return node, json.loads(socket.recv(timeout=30))


@pytest.fixture(scope="module")
def sticky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sticky]:
    """Two nodes, the echo app (HTTP and a websocket) deployed with rsconnect on the first, HAProxy in front."""
    root = tmp_path_factory.mktemp("sticky")
    with cluster(root, 2) as group:
        pub = setup_publishing(group.nodes[0], root / "home", wheels="echo")
        app = copy_app("echo-app", root / "apps")
        result = pub.deploy("fastapi", app)
        assert "Deployment completed successfully." in result.stdout + result.stderr, result.stdout + result.stderr
        with haproxy(root / "haproxy", [node.port for node in group.nodes]) as balancer:
            yield Sticky(group, balancer, pub, str(pub.record(app)["app_guid"]))


def test_one_clients_content_stays_on_one_node_and_the_rest_is_balanced(sticky: Sticky) -> None:
    sessions = [sticky.open_socket() for _ in range(5)]
    nodes = {node for node, _ in sessions}
    assert len(nodes) == 1, sessions
    assert all(seen["path"] == f"/content/{sticky.guid}/ws" for _, seen in sessions)
    pages = [
        httpx.get(f"{sticky.balancer.url}/content/{sticky.guid}/", headers=sticky.headers, timeout=60)
        for _ in range(10)
    ]
    assert {(page.status_code, page.headers["X-Packyard-Node"]) for page in pages} == {(200, nodes.pop())}
    # Packyard's own pages and API need no stickiness: they are balanced over both nodes.
    index = [httpx.get(f"{sticky.balancer.url}/pypi/latest/simple/", timeout=30) for _ in range(10)]
    assert {page.headers["X-Packyard-Node"] for page in index} == {"node1", "node2"}


def test_a_session_opens_on_the_other_node_when_its_node_dies(sticky: Sticky) -> None:
    node, _ = sticky.open_socket()
    victim = int(node.removeprefix("node")) - 1
    sticky.cluster.kill(victim)
    try:
        sticky.balancer.wait_state(node, "DOWN", backend="content")
        # The other node starts the app from the database on its first request; the session opens there.
        survivor, seen = sticky.open_socket()
        assert survivor != node and seen["path"] == f"/content/{sticky.guid}/ws"
    finally:
        sticky.cluster.restart(victim)
    sticky.balancer.wait_state(node, "UP", backend="content")
    assert sticky.open_socket()[0] == node  # the client's sessions go back to the node its address hashes to
