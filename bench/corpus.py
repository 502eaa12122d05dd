"""The corpus: N projects x 5 versions of tiny pure-Python wheels, a 150-project dependency tree, and the
same files as a static PEP 503 tree for nginx. Built once per size under bench/.work/corpus/p<N>/."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from util import WORK, log

VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0")
TREE_SIZE = 150
TREE_FANOUT = 3
TREE_ROOT = "bench-tree-000"
# Fixed zip timestamps make the corpus byte-identical from run to run (same sha256s, same page sizes).
_DATE = (2026, 1, 1, 0, 0, 0)
_COMPLETE = ".complete"


@dataclass(frozen=True)
class Dist:
    project: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class Corpus:
    size: int
    root: Path
    dists: list[Dist]

    @property
    def files_dir(self) -> Path:
        """Every wheel in one flat folder: what pypiserver serves and what uploads read."""
        return self.root / "files"

    @property
    def static_dir(self) -> Path:
        """nginx's document root: `simple/<project>/index.html` and `packages/<file>`."""
        return self.root / "static"

    @property
    def projects(self) -> list[str]:
        """The N corpus projects whose pages are load-tested (not the dependency tree)."""
        return [project_name(i) for i in range(self.size)]

    def files(self, projects: set[str] | None = None) -> list[Path]:
        return [self.files_dir / d.filename for d in self.dists if projects is None or d.project in projects]


def project_name(index: int) -> str:
    return f"bench-p{index:05d}"


def tree_name(index: int) -> str:
    return f"bench-tree-{index:03d}"


def tree_children(index: int, size: int = TREE_SIZE) -> list[int]:
    """Node i of a complete ternary tree depends on 3i+1..3i+3: 150 nodes, five levels deep."""
    first = TREE_FANOUT * index + 1
    return [c for c in range(first, first + TREE_FANOUT) if c < size]


def tree_requires(index: int) -> list[str]:
    return [f"{tree_name(c)}>=1.0" for c in tree_children(index)]


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def wheel_bytes(name: str, version: str, requires: list[str] | None = None) -> tuple[str, bytes]:
    """A valid pure-Python wheel (the same shape as tests/dists.py `make_wheel`), built in memory."""
    dist = name.replace("-", "_").replace(".", "_").lower()
    info = f"{dist}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", f"Summary: Benchmark {name}"]
    metadata += [f"Requires-Dist: {r}" for r in requires or []]
    files = {
        f"{dist}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{info}/METADATA": ("\n".join(metadata) + "\n\n").encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: packyard-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "\n".join(_record_line(p, d) for p, d in files.items()) + f"\n{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, date_time=_DATE), data, zipfile.ZIP_DEFLATED)
    return f"{dist}-{version}-py3-none-any.whl", buffer.getvalue()


def _write_project(out: Path, name: str, requires: list[str]) -> list[Dist]:
    dists = []
    for version in VERSIONS:
        filename, data = wheel_bytes(name, version, requires)
        (out / filename).write_bytes(data)
        dists.append(Dist(name, version, filename, hashlib.sha256(data).hexdigest()))
    return dists


def _manifest_path(root: Path) -> Path:
    return root / "manifest.tsv"


def _read_manifest(root: Path) -> list[Dist]:
    lines = _manifest_path(root).read_text().splitlines()
    return [Dist(*line.split("\t")) for line in lines if line]


def _write_manifest(root: Path, dists: list[Dist]) -> None:
    text = "".join(f"{d.project}\t{d.version}\t{d.filename}\t{d.sha256}\n" for d in dists)
    _manifest_path(root).write_text(text)


def ensure_corpus(size: int) -> Corpus:
    """The corpus of `size` projects plus the dependency tree; generated on first use, then reused."""
    root = WORK / "corpus" / f"p{size}"
    if (root / _COMPLETE).exists():
        return Corpus(size, root, _read_manifest(root))
    log(f"generating corpus: {size} projects x {len(VERSIONS)} versions + {TREE_SIZE}-project tree in {root}")
    shutil.rmtree(root, ignore_errors=True)
    files = root / "files"
    files.mkdir(parents=True)
    dists: list[Dist] = []
    for i in range(size):
        dists += _write_project(files, project_name(i), [])
    for i in range(TREE_SIZE):
        dists += _write_project(files, tree_name(i), tree_requires(i))
    corpus = Corpus(size, root, dists)
    write_static_tree(corpus)
    _write_manifest(root, dists)
    (root / _COMPLETE).touch()
    log(f"corpus ready: {len(dists)} wheels")
    return corpus


def _project_page(project: str, dists: list[Dist]) -> str:
    links = "".join(
        f'    <a href="../../packages/{d.filename}#sha256={d.sha256}">{d.filename}</a><br />\n' for d in dists
    )
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n    <title>Links for "
        f"{project}</title>\n  </head>\n  <body>\n    <h1>Links for {project}</h1>\n{links}  </body>\n</html>\n"
    )


def write_static_tree(corpus: Corpus) -> None:
    """PEP 503 as plain files, the way `dumb-pypi` or an S3 bucket serves an index."""
    simple = corpus.static_dir / "simple"
    by_project: dict[str, list[Dist]] = {}
    for d in corpus.dists:
        by_project.setdefault(d.project, []).append(d)
    for project, dists in by_project.items():
        page = simple / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(_project_page(project, dists))
    root_links = "".join(f'    <a href="{p}/">{p}</a><br />\n' for p in sorted(by_project))
    (simple / "index.html").write_text(f"<!DOCTYPE html>\n<html>\n  <body>\n{root_links}  </body>\n</html>\n")
    (corpus.static_dir / "packages").symlink_to(corpus.files_dir.resolve(), target_is_directory=True)
