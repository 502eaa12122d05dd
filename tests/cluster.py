"""Several Packyard nodes on one PostgreSQL database and one blob store, as issue 16 runs them: each node has a data
directory of its own (its caches) and shares the keys, the database and the blobs (a folder both reach, as NFS
would be, or a bucket of moto's S3 server)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.conftest import Server, _start, fresh_database


@dataclass
class Cluster:
    """`nodes[i]` is a running `packyard run`; `kill(i)` ends one with SIGKILL, `restart(i)` brings it back on its
    port with its data directory."""

    database_url: str
    env: dict[str, str]
    root: Path
    nodes: list[Server] = field(default_factory=list)

    def add_node(self, env: dict[str, str] | None = None) -> Server:
        data_dir = self.root / f"node{len(self.nodes) + 1}"
        node = _start(data_dir, self.database_url, {**self.env, **(env or {})})
        self.nodes.append(node)
        return node

    def kill(self, index: int) -> None:
        process = self.nodes[index].process
        process.kill()
        process.wait(10)

    def restart(self, index: int) -> None:
        node = self.nodes[index]
        if node.process.poll() is None:
            node.stop()
        node.process = _start(node.data_dir, node.database_url, node.env, node.port).process

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextmanager
def cluster(
    root: Path, nodes: int = 2, storage: dict[str, str] | None = None, database_port: int | None = None
) -> Iterator[Cluster]:
    """`nodes` nodes on a fresh PostgreSQL database, sharing the folder `root/blobs` as their blob store unless
    `storage` gives other `PACKYARD_STORAGE_*` settings (an S3 bucket). With `database_port` the nodes reach
    PostgreSQL through that port of 127.0.0.1 (a forwarder the test can cut, tests/tcp_proxy.py); the database is
    still made and dropped directly."""
    shared = {
        "PACKYARD_AUTHENTICATION_SECRET": secrets.token_hex(32),
        "PACKYARD_PUBLISHING_ENCRYPTION_KEY": secrets.token_hex(32),
        "PACKYARD_UPLOAD_MAX_FILE_SIZE": "50MiB",
        **(storage or {"PACKYARD_STORAGE_PATH": str(root / "blobs")}),
    }
    with fresh_database("postgresql") as url:
        if database_port is not None:
            url = make_url(url).set(host="127.0.0.1", port=database_port).render_as_string(hide_password=False)
        group = Cluster(url, shared, root)
        try:
            for _ in range(nodes):
                group.add_node()
            yield group
        finally:
            group.stop()
