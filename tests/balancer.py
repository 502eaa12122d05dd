"""HAProxy (Debian's package) in front of Packyard nodes on 127.0.0.1, as docs/SCALING.md tells operators to run it.

`config()` is the configuration the docs quote: health checks on `/__health__` every half second, L7 retries of
idempotent requests on another node (a node killed mid-request answers nothing, and GETs are safe to send
again), none for other methods (an upload that got no answer is the client's to retry: Packyard takes an identical
re-upload, but Connect's POSTs create things), and `/content/` kept on one node per client address, since a
process there holds an app's session state (websockets). Each answer names the node that served it
(`X-Packyard-Node`), so tests can tell which one did.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port

STATS = "/haproxy-stats"


def haproxy_bin() -> str:
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(found).exists():
        raise RuntimeError("haproxy is not installed; `make test` installs it (apt-get install -y haproxy)")
    return found


def config(port: int, backends: Sequence[int], stats_port: int) -> str:
    """haproxy.cfg for nodes on these ports of 127.0.0.1, listening on `port`; statistics (CSV) on `stats_port`."""
    servers = "\n".join(f"    server node{i + 1} 127.0.0.1:{backend} check" for i, backend in enumerate(backends))
    servers += "\n" + "\n".join(
        f"    server node{i + 1}-fallback 127.0.0.1:{backend} backup" for i, backend in enumerate(backends)
    )
    return f"""\
global
    maxconn 4096
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    option forwardfor
    timeout connect 2s
    timeout client 120s
    # An upload or a cold file download may take a while; a node that died answers nothing, which
    # `empty-response` retries at once rather than after this timeout.
    timeout server 120s
    timeout http-request 30s
    # Up to 3 more attempts, each on another node (`redispatch 1`: every retry may move).
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    # A check every half second, two failures take a node out, one success brings it back. A check may take up to
    # 2 s: a node busy with a burst (all of it on 2 cores in the tests) is slow, not dead, and a dead one refuses
    # the connection at once.
    default-server inter 500 fastinter 250 downinter 500 fall 2 rise 1
    timeout check 2s

frontend packyard
    bind 127.0.0.1:{port}
    # HAProxy would replay a POST whose body fits in a buffer; only GET and HEAD are safe to send twice.
    http-request disable-l7-retry unless METH_GET
    use_backend content if {{ path_beg /content/ }}
    default_backend nodes

# Every node is listed twice: checked, and as an unchecked backup. When every node fails its health check the
# outage is a shared one (the database, the object store), and HAProxy's own bare 503 would hide what is wrong:
# the backups then take the traffic, so clients get Packyard's 503 naming what is down, and what needs neither
# (simple pages and content in memory) still answers. A node that is really gone refuses the connection, and
# the retry goes to another.
backend nodes
    balance roundrobin
    option allbackups
    option httpchk GET /__health__
    http-check expect status 200
    # Which node answered: the tests read it, and it helps when following a request through the logs.
    http-response set-header X-Packyard-Node %[srv_name]
{servers}

backend content
    # An app process holds a session's state (websockets): one client address stays on one node.
    balance source
    hash-type consistent
    option allbackups
    option httpchk GET /__health__
    http-check expect status 200
    http-response set-header X-Packyard-Node %[srv_name]
{servers}

frontend stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri {STATS}
    stats refresh 1s
"""


@dataclass
class Balancer:
    url: str
    stats_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def states(self, backend: str = "nodes") -> dict[str, str]:
        """Each server of a backend and its state as HAProxy sees it (`UP`, `DOWN`, `UP 1/2`, ...)."""
        text = httpx.get(f"{self.stats_url};csv", timeout=5).text.lstrip("# ")
        return {
            row["svname"]: row["status"]
            for row in csv.DictReader(io.StringIO(text))
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_state(self, server: str, state: str, seconds: float = 30, backend: str = "nodes") -> None:
        deadline = time.monotonic() + seconds
        while (seen := self.states(backend).get(server)) != state:
            assert time.monotonic() < deadline, f"{server} stayed {seen} in {self.states(backend)}, not {state}"
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextmanager
def haproxy(folder: Path, backends: Sequence[int], up: int | None = None) -> Iterator[Balancer]:
    """HAProxy in the foreground (`-db`) on a free port in front of `backends`, stopped at the end; returns once
    `up` servers (all by default) pass their health checks."""
    folder.mkdir(parents=True, exist_ok=True)
    port, stats_port = free_port(), free_port()
    cfg = folder / "haproxy.cfg"
    cfg.write_text(config(port, backends, stats_port))
    check = subprocess.run([haproxy_bin(), "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, f"haproxy refused {cfg}:\n{check.stdout}{check.stderr}"
    log_path = folder / "haproxy.log"
    process = subprocess.Popen(
        [haproxy_bin(), "-db", "-f", str(cfg)], stdout=log_path.open("ab"), stderr=subprocess.STDOUT
    )
    balancer = Balancer(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{stats_port}{STATS}", process, log_path)
    try:
        deadline = time.monotonic() + 30
        wanted = len(backends) if up is None else up
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"haproxy exited:\n{balancer.log()}")
            try:
                if sum(state == "UP" for state in balancer.states().values()) >= wanted:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"haproxy's servers did not come up:\n{balancer.log()}"
            time.sleep(0.1)
        yield balancer
    finally:
        balancer.stop()
