"""uv install of a 30-package dependency tree through a caching mirror, against the same install from the upstream
directly: Packyard's `pypi` mirror source and devpi-server's mirror index, each cold (its first install, so every
page and file comes from the upstream) and cached (later installs). The upstream is nginx serving a static PEP 503
tree with PEP 658 `.metadata` files, the way PyPI serves pages and files from a CDN. See bench/README.md."""

from __future__ import annotations

import hashlib
import io
import shutil
import statistics
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from corpus import VERSIONS, Dist, wheel_bytes
from installs import InstallResult, install_once
from servers import DEVPI_PACKAGES, Target, _devpi_client, _side_venv, serve_static
from util import (
    HOST,
    SERVER_CORE,
    WORK,
    OtherLoad,
    Service,
    clean_env,
    free_port,
    log,
    pinned,
    run,
    spawn,
    tool,
    wait_http,
)

MIRROR_TREE_SIZE = 30
MIRROR_TREE_ROOT = "mirror-tree-00"
MIRRORS = ("direct", "packyard", "devpi")
DIRECT = "upstream directly (nginx, static)"


def mirror_tree_name(index: int) -> str:
    return f"mirror-tree-{index:02d}"


def mirror_tree_requires(index: int) -> list[str]:
    """The corpus's ternary tree cut to 30 nodes: node i requires 3i+1..3i+3, four levels deep."""
    children = [c for c in range(3 * index + 1, 3 * index + 4) if c < MIRROR_TREE_SIZE]
    return [f"{mirror_tree_name(c)}>=1.0" for c in children]


@dataclass(frozen=True)
class MirrorCorpus:
    root: Path
    dists: list[Dist]

    @property
    def static_dir(self) -> Path:
        return self.root / "static"


def _metadata_of(wheel: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(wheel)) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return zf.read(name)


def ensure_mirror_corpus() -> MirrorCorpus:
    """30 projects x 5 versions as a static tree: `simple/<p>/index.html` linking `../../packages/<file>` with
    `#sha256=` and `data-core-metadata`, and `packages/<file>.metadata` beside each wheel. Byte-identical per run."""
    root = WORK / "mirror-corpus"
    marker = root / ".complete"
    packages = root / "static" / "packages"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        packages.mkdir(parents=True)
        names = []
        for i in range(MIRROR_TREE_SIZE):
            name = mirror_tree_name(i)
            names.append(name)
            links = []
            for version in VERSIONS:
                filename, data = wheel_bytes(name, version, mirror_tree_requires(i))
                metadata = _metadata_of(data)
                (packages / filename).write_bytes(data)
                (packages / f"{filename}.metadata").write_bytes(metadata)
                digest, meta_digest = hashlib.sha256(data).hexdigest(), hashlib.sha256(metadata).hexdigest()
                links.append(
                    f'    <a href="../../packages/{filename}#sha256={digest}" data-core-metadata="sha256={meta_digest}"'
                    f' data-dist-info-metadata="sha256={meta_digest}">{filename}</a><br />\n'
                )
            page = root / "static" / "simple" / name / "index.html"
            page.parent.mkdir(parents=True)
            page.write_text(
                f"<!DOCTYPE html>\n<html>\n  <head>\n    <title>Links for {name}</title>\n  </head>\n  <body>\n"
                f"    <h1>Links for {name}</h1>\n{''.join(links)}  </body>\n</html>\n"
            )
        root_links = "".join(f'    <a href="{n}/">{n}</a><br />\n' for n in names)
        (root / "static" / "simple" / "index.html").write_text(
            f"<!DOCTYPE html>\n<html>\n  <body>\n{root_links}  </body>\n</html>\n"
        )
        marker.touch()
    dists = []
    for path in sorted(packages.glob("*.whl")):
        project, version = path.name.split("-")[:2]
        dists.append(Dist(project.replace("_", "-"), version, path.name, ""))
    return MirrorCorpus(root, dists)


@contextmanager
def static_upstream(corpus: MirrorCorpus) -> Iterator[Target]:
    # `.metadata` is not a type nginx knows; the shared config's default (octet-stream) is what PyPI sends too.
    target = serve_static(corpus.static_dir, DIRECT, "mirror-upstream")
    try:
        yield target
    finally:
        target.stop()


# The mirrors. Each start gives an empty mirror: a cold install must find nothing cached.


def start_packyard_mirror(upstream_index: str, rep: int) -> Target:
    data = WORK / "mirror" / f"packyard-{rep}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    port = free_port()
    base = f"http://{HOST}:{port}"
    (data / "packyard.toml").write_text(
        f'[server]\naddress = "{base}"\nhost = "{HOST}"\nport = {port}\naccess_log = false\n\n'
        f'[mirror]\nupstream = "{upstream_index}"\n'
    )
    env = clean_env(WORK / "home" / "packyard", PACKYARD_SERVER_ACCESS_LOG="false")
    cmd = [tool("packyard"), "run", "--data-dir", str(data), "--port", str(port)]
    service = spawn("packyard mirror", pinned(SERVER_CORE, cmd), data / "server.log", env)
    wait_http(service, f"{base}/__ping__")
    return Target("packyard mirror", base, "/pypi/latest/simple/", service)


def start_devpi_mirror(upstream_index: str, rep: int) -> Target:
    """devpi-server with a fresh server directory and one index `root/up` of `type=mirror` on the upstream."""
    bin_dir = _side_venv("devpi", DEVPI_PACKAGES)
    data = WORK / "mirror" / f"devpi-{rep}"
    shutil.rmtree(data, ignore_errors=True)
    server_dir, client_dir = data / "server", data / "client"
    run([str(bin_dir / "devpi-init"), "--serverdir", str(server_dir), "--no-root-pypi", "--root-passwd", "root"])
    port = free_port()
    base = f"http://{HOST}:{port}"
    cmd = [str(bin_dir / "devpi-server"), "--serverdir", str(server_dir), "--host", HOST, "--port", str(port)]
    service = spawn("devpi mirror", pinned(SERVER_CORE, cmd), data / "server.log")
    try:
        wait_http(service, f"{base}/+api", timeout=300)
        _devpi_client(bin_dir, client_dir, "use", base)
        _devpi_client(bin_dir, client_dir, "login", "root", "--password", "root")
        _devpi_client(bin_dir, client_dir, "index", "-c", "root/up", "type=mirror", f"mirror_url={upstream_index}")
    except BaseException:
        service.stop()
        raise
    return Target("devpi mirror", base, "/root/up/+simple/", service)


def _timed(target: Target, upstream: Service, slug: str, rep: int) -> tuple[float, float]:
    meter = OtherLoad(target.service.process.pid, upstream.process.pid)
    seconds = install_once(target, slug, rep, MIRROR_TREE_ROOT, MIRROR_TREE_SIZE)
    return seconds, meter.cores()


def measure_mirror(
    name: str, start: Callable[[str, int], Target], upstream: Target, reps: int
) -> tuple[InstallResult, InstallResult]:
    """`reps` cold installs, each into a new empty mirror, then `reps` cached installs from the last one."""
    cold: list[float] = []
    cached: list[float] = []
    other: list[float] = []
    target: Target | None = None
    try:
        for rep in range(reps):
            if target is not None:
                target.stop()
            target = start(upstream.index_url, rep)
            seconds, cores = _timed(target, upstream.service, f"{name}-cold", rep)
            cold.append(seconds)
            other.append(cores)
        assert target is not None
        for rep in range(reps):
            seconds, cores = _timed(target, upstream.service, f"{name}-cached", rep)
            cached.append(seconds)
            other.append(cores)
    finally:
        if target is not None:
            target.stop()
    load = statistics.mean(other)
    results = (
        InstallResult(f"{target.name}, cold", MIRROR_TREE_SIZE, cold, load),
        InstallResult(f"{target.name}, cached", MIRROR_TREE_SIZE, cached, load),
    )
    for r in results:
        log(f"{r.server}: median {r.median:.2f}s ({', '.join(f'{s:.2f}' for s in r.seconds)})")
    return results


def measure(mirrors: list[str], reps: int) -> list[InstallResult]:
    """The direct install and each mirror's, in one run on one corpus and one upstream."""
    corpus = ensure_mirror_corpus()
    log(f"mirror benchmark: {len(corpus.dists)} wheels in {MIRROR_TREE_SIZE} projects, {reps} repetitions")
    results: list[InstallResult] = []
    with static_upstream(corpus) as upstream:
        if "direct" in mirrors:
            # One untimed install first, as installs.py does: nginx's first reads come from disk.
            install_once(upstream, "direct-warm", -1, MIRROR_TREE_ROOT, MIRROR_TREE_SIZE)
            meter = OtherLoad(upstream.service.process.pid)
            seconds = [install_once(upstream, "direct", rep, MIRROR_TREE_ROOT, MIRROR_TREE_SIZE) for rep in range(reps)]
            results.append(InstallResult(DIRECT, MIRROR_TREE_SIZE, seconds, meter.cores()))
            log(f"{DIRECT}: median {results[-1].median:.2f}s")
        starters = {"packyard": start_packyard_mirror, "devpi": start_devpi_mirror}
        for name in mirrors:
            if name in starters:
                results.extend(measure_mirror(name, starters[name], upstream, reps))
    return results
