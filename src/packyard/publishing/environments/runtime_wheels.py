"""Packyard's runtime packages as wheels, re-packed from the server's own installed copies.

Content environments get packages beside their requirements (uvicorn, a2wsgi, nbconvert, ...). The server carries
them in its own environment, and this module packs each one a content needs, with its dependencies, back into a
wheel in `cache/runtime-wheels/<digest>/`, which environment builds give uv as `--find-links`. So content deploys
from a repository that holds only its own requirements. The folder is a cache, rebuilt whenever it is missing.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import sysconfig
import threading
import time
import uuid
import zipfile
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from packyard.publishing.errors import RepackError

MARKER = "wheels.json"  # written last in a folder: the wheels it holds, and those that could not be packed
# What an installer writes into a dist-info beside the wheel's own files; RECORD is written anew, and the
# signatures of the old one would no longer match it.
_INSTALLER_FILES = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD", "RECORD.jws", "RECORD.p7s"}
# A fixed timestamp: the same installed files give the same wheel bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class RuntimeDist:
    """One distribution of the runtime, as installed in the server's environment."""

    name: str  # canonical
    version: str
    filename: str  # of the wheel it packs into
    via: tuple[str, ...]  # the runtime package that needs it, down to the one that requires it; () for the roots
    dist: importlib.metadata.Distribution = field(compare=False, repr=False)


@dataclass(frozen=True)
class RuntimeSet:
    """Runtime packages with the closure of their dependencies, read from the server's installed metadata."""

    packages: tuple[str, ...]  # what was asked for, canonical and sorted
    dists: tuple[RuntimeDist, ...]
    absent: dict[str, tuple[str, ...]]  # needed but not installed on the server, with the chain that needs it

    @property
    def filenames(self) -> list[str]:
        return sorted(d.filename for d in self.dists)

    @property
    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.filenames).encode()).hexdigest()

    def find(self, name: str) -> RuntimeDist | None:
        return next((d for d in self.dists if d.name == canonicalize_name(name)), None)


@dataclass(frozen=True)
class Wheelhouse:
    """A folder of runtime wheels, ready for uv's `--find-links`."""

    path: Path
    count: int  # wheels in it
    size: int  # bytes
    seconds: float | None  # how long packing took; None when the folder was already there
    skipped: dict[str, str]  # wheel file name -> why it could not be packed


def resolve(packages: Iterable[str]) -> RuntimeSet:
    """The packages and every dependency the server's environment has installed for them, breadth first, so
    each one's `via` is a shortest chain. Markers are evaluated for the server's own Python."""
    roots = tuple(sorted({canonicalize_name(p) for p in packages}))
    queue: deque[tuple[str, frozenset[str], tuple[str, ...]]] = deque((name, frozenset(), ()) for name in roots)
    found: dict[str, RuntimeDist] = {}
    extras_done: dict[str, set[str]] = {}
    absent: dict[str, tuple[str, ...]] = {}
    while queue:
        name, extras, via = queue.popleft()
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            absent.setdefault(name, via)
            continue
        if name not in found:
            try:
                found[name] = RuntimeDist(name, dist.version, wheel_filename(dist), via, dist)
            except RepackError:
                absent.setdefault(name, via)  # left to the content's repository, like a package not installed
                continue
            evaluate = ["", *sorted(extras)]
        else:
            evaluate = sorted(extras - extras_done[name])
        extras_done.setdefault(name, set()).update(extras)
        for text in dist.requires or []:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue  # the server installed it anyway, so this line decided nothing
            if req.marker is None and "" not in evaluate:
                continue
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in evaluate):
                continue
            child = canonicalize_name(req.name)
            wanted = frozenset(canonicalize_name(e) for e in req.extras)
            if child not in found or not wanted <= extras_done.get(child, set()):
                queue.append((child, wanted, (*via, name)))
    return RuntimeSet(roots, tuple(found.values()), absent)


def wheel_filename(dist: importlib.metadata.Distribution) -> str:
    """The wheel's file name by the wheel spec: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`, its
    tags the original wheel's, from the dist-info's own WHEEL file."""
    wheel = email.parser.HeaderParser().parsestr(dist.read_text("WHEEL") or "")
    tags = [tag.strip().split("-") for tag in wheel.get_all("Tag") or []]
    if not tags or any(len(tag) != 3 for tag in tags):
        raise RepackError(f"the WHEEL file of `{dist.metadata['Name']}` has no valid `Tag:` line")
    pythons, abis, platforms = ([tag[i] for tag in tags] for i in range(3))
    try:
        version = str(Version(dist.version))
    except InvalidVersion as exc:
        raise RepackError(f"`{dist.metadata['Name']}` has version `{dist.version}`, which is not valid") from exc
    parts = [re.sub(r"[-_.]+", "_", dist.metadata["Name"]).lower(), version.replace("-", "_")]
    build = wheel.get("Build")
    if build:
        parts.append(build.strip())
    parts += [".".join(dict.fromkeys(names)) for names in (pythons, abis, platforms)]
    return "-".join(parts) + ".whl"


def repack(runtime: RuntimeDist, folder: Path) -> Path:
    """Pack an installed distribution into `folder` as the wheel it was installed from: its RECORD's files, each
    checked against the RECORD's hash, and a new RECORD. Written to a temporary name, then renamed."""
    dist = runtime.dist
    files = dist.files
    if not files:
        raise RepackError(f"`{runtime.name}` was installed without a RECORD file")
    info = next((f.parts[0] for f in files if len(f.parts) == 2 and f.parts[1] == "METADATA"), None)
    if info is None or not info.endswith(".dist-info"):
        raise RepackError(f"`{runtime.name}` has no `.dist-info/METADATA` in its RECORD")
    site = os.path.normpath(str(dist.locate_file("")))
    paths = sysconfig.get_paths()
    scripts, data = os.path.normpath(paths["scripts"]), os.path.normpath(paths["data"])
    # Scripts an installer generated from entry points: uv writes them again for the content's Python.
    generated = {ep.name for ep in dist.entry_points if ep.group in ("console_scripts", "gui_scripts")}
    stem = info.removesuffix(".dist-info")
    members: list[tuple[str, bytes, bool]] = []  # archive name, bytes, executable
    for file in files:
        if "__pycache__" in file.parts or (file.parts[0] == info and file.name in _INSTALLER_FILES):
            continue
        path = os.path.normpath(os.path.join(site, str(file)))
        try:
            content = Path(path).read_bytes()
            executable = bool(os.stat(path).st_mode & 0o111)
        except OSError as exc:
            raise RepackError(f"`{path}` of `{runtime.name}` cannot be read ({exc.strerror})") from exc
        if file.hash is not None and file.hash.mode == "sha256" and _sha256(content) != file.hash.value:
            raise RepackError(f"`{path}` of `{runtime.name}` changed since it was installed (its sha256 differs)")
        if _inside(path, site):
            name = os.path.relpath(path, site)
        elif _inside(path, scripts):
            if os.path.basename(path) in generated:
                continue
            name = f"{stem}.data/scripts/{os.path.basename(path)}"
            # The installer wrote this interpreter's path into the shebang; `#!python` lets uv write the content's.
            if content.startswith(b"#!") and b"python" in content.split(b"\n", 1)[0]:
                content = b"#!python\n" + content.split(b"\n", 1)[1]
                executable = True
        elif _inside(path, data):
            name = f"{stem}.data/data/{os.path.relpath(path, data)}"
        else:
            raise RepackError(f"`{path}` of `{runtime.name}` is outside the server's environment")
        members.append((name.replace(os.sep, "/"), content, executable))
    members.sort(key=lambda m: (m[0].startswith(f"{info}/"), m[0]))  # the dist-info last, as the spec advises
    record = "".join(f"{name},sha256={_sha256(content)},{len(content)}\n" for name, content, _ in members)
    members.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode(), False))
    target = folder / runtime.filename
    staging = folder / f".{runtime.filename}.{uuid.uuid4().hex}.tmp"
    try:
        with zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for name, content, executable in members:
                entry = zipfile.ZipInfo(name, _EPOCH)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = (0o100755 if executable else 0o100644) << 16
                archive.writestr(entry, content)
        os.chmod(staging, 0o644)
        os.replace(staging, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    return target


class RuntimeWheels:
    """The runtime wheel folders under `root`, one per set of runtime packages and the versions installed.

    Readable by everyone (0755 folders, 0644 files): uv may run as another, unprivileged user."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sets: dict[tuple[str, ...], RuntimeSet] = {}
        self._lock = threading.Lock()

    def resolve(self, packages: Iterable[str]) -> RuntimeSet:
        """`resolve`, once per set in this process: the server's installed packages change only with a restart."""
        key = tuple(sorted({canonicalize_name(p) for p in packages}))
        found = self._sets.get(key)
        if found is None:
            found = self._sets[key] = resolve(key)
        return found

    def folder(self, runtime: RuntimeSet) -> Wheelhouse:
        """The set's folder of wheels, packed now if it is missing or incomplete."""
        path = self.root / runtime.digest[:16]
        with self._lock:
            ready = _read_marker(path, runtime)
            if ready is not None:
                return _wheelhouse(path, ready, None)
            return self._build(path, runtime)

    def _build(self, path: Path, runtime: RuntimeSet) -> Wheelhouse:
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        staging = self.root / f".build-{uuid.uuid4().hex}"
        staging.mkdir(mode=0o755)
        os.chmod(staging, 0o755)
        try:
            siblings = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
            skipped: dict[str, str] = {}
            for dist in runtime.dists:
                if _link_from(siblings, dist.filename, staging):
                    continue  # packed by an earlier set from the same installed files
                try:
                    repack(dist, staging)
                except RepackError as exc:
                    skipped[dist.filename] = str(exc)
            marker = {"packages": list(runtime.packages), "wheels": runtime.filenames, "skipped": skipped}
            (staging / MARKER).write_text(json.dumps(marker, indent=1))
            os.chmod(staging / MARKER, 0o644)
            if path.exists() and _read_marker(path, runtime) is None:  # incomplete: a wheel was deleted from it
                trash = self.root / f".trash-{uuid.uuid4().hex}"
                os.rename(path, trash)
                shutil.rmtree(trash, ignore_errors=True)
            try:
                os.rename(staging, path)
            except OSError:
                # Another server process packed the same set meanwhile: its folder may be in use, so it stays.
                if _read_marker(path, runtime) is None:
                    raise
            # Folders of this set from before the server's packages changed: nothing builds with them again.
            for old in siblings:
                if old != path and _packages_of(old) == list(runtime.packages):
                    shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        ready = _read_marker(path, runtime)
        assert ready is not None
        return _wheelhouse(path, ready, round(time.monotonic() - started, 3))


def _read_marker(path: Path, runtime: RuntimeSet) -> dict[str, str] | None:
    """The folder's skipped wheels when it holds every wheel of the set it was built for; None otherwise."""
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("wheels") != runtime.filenames:
        return None
    skipped = marker.get("skipped") or {}
    if not all((path / name).is_file() for name in runtime.filenames if name not in skipped):
        return None
    return {str(k): str(v) for k, v in skipped.items()}


def _packages_of(path: Path) -> list[str] | None:
    try:
        packages = json.loads((path / MARKER).read_text()).get("packages")
    except (OSError, ValueError, AttributeError):
        return None
    return packages if isinstance(packages, list) else None


def _wheelhouse(path: Path, skipped: dict[str, str], seconds: float | None) -> Wheelhouse:
    wheels = [p for p in path.glob("*.whl")]
    return Wheelhouse(path, len(wheels), sum(p.stat().st_size for p in wheels), seconds, skipped)


def _link_from(siblings: list[Path], filename: str, staging: Path) -> bool:
    for sibling in siblings:
        if (sibling / filename).is_file() and _packages_of(sibling) is not None:
            with contextlib.suppress(OSError):
                os.link(sibling / filename, staging / filename)
                return True
    return False


def _sha256(content: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
