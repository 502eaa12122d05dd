"""Build real wheels and sdists for tests, in-process and deterministic (no network, no build backend), and
distributions as an installer leaves them."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import tarfile
import zipfile
from pathlib import Path


def _metadata(name: str, version: str, requires: list[str], requires_python: str | None) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", f"Summary: Test package {name}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    return "\n".join(lines) + "\n\n"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(
    out: Path,
    name: str,
    version: str,
    requires: list[str] | None = None,
    requires_python: str | None = None,
    payload: bytes = b"",
    metadata: str | None = None,
    skip: tuple[str, ...] = (),
) -> Path:
    """A pure-Python wheel with one module; `metadata` overrides METADATA, `skip` leaves files out."""
    dist = name.replace("-", "_").replace(".", "_").lower()
    module = f"{dist}/__init__.py"
    files = {
        module: f"VERSION = {version!r}\n".encode() + payload,
        f"{dist}-{version}.dist-info/METADATA": (
            metadata if metadata is not None else _metadata(name, version, requires or [], requires_python)
        ).encode(),
        f"{dist}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: packyard-tests\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files = {k: v for k, v in files.items() if k.split("/")[-1] not in skip}
    record_path = f"{dist}-{version}.dist-info/RECORD"
    record = "\n".join(_record_line(p, d) for p, d in files.items()) + f"\n{record_path},,\n"
    if "RECORD" not in skip:
        files[record_path] = record.encode()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p, d in files.items():
            info = zipfile.ZipInfo(p, date_time=(2026, 1, 1, 0, 0, 0))
            zf.writestr(info, d, zipfile.ZIP_DEFLATED)
    return path


def make_sdist(out: Path, name: str, version: str, requires: list[str] | None = None) -> Path:
    dist = name.replace("-", "_").replace(".", "_").lower()
    top = f"{dist}-{version}"
    pkg_info = _metadata(name, version, requires or [], None).encode()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for member, data in ((f"{top}/PKG-INFO", pkg_info), (f"{top}/{dist}/__init__.py", b"")):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = 1767225600
            tf.addfile(info, io.BytesIO(data))
    return path


# An in-tree PEP 517 backend with no requirements: the sdist builds with nothing fetched from any index.
_BACKEND = """\
import base64, hashlib, os, zipfile
from email.parser import Parser


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open("PKG-INFO") as f:
        text = f.read()
    message = Parser().parsestr(text)
    dist = message["Name"].replace("-", "_").replace(".", "_").lower()
    version = message["Version"]
    info = f"{dist}-{version}.dist-info"
    files = {}
    for root, _, names in os.walk(dist):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[path.replace(os.sep, "/")] = f.read()
    files[f"{info}/METADATA"] = text.encode()
    wheel = "Wheel-Version: 1.0\\nGenerator: packyard-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    files[f"{info}/WHEEL"] = wheel.encode()
    lines = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{path},sha256={digest},{len(data)}")
    files[f"{info}/RECORD"] = ("\\n".join(lines) + f"\\n{info}/RECORD,,\\n").encode()
    filename = f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return filename
"""


def make_buildable_sdist(out: Path, name: str, version: str, requires: list[str] | None = None) -> Path:
    """An sdist that pip and uv can build offline: `pyproject.toml` names an in-tree backend with no requirements."""
    dist = name.replace("-", "_").replace(".", "_").lower()
    top = f"{dist}-{version}"
    members = {
        f"{top}/PKG-INFO": _metadata(name, version, requires or [], None).encode(),
        f"{top}/pyproject.toml": b'[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        f"{top}/backend.py": _BACKEND.encode(),
        f"{top}/{dist}/__init__.py": f"VERSION = {version!r}\n".encode(),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = 1767225600
            tf.addfile(info, io.BytesIO(data))
    return path


def installed_dist(site: Path, name: str, tags: list[str], files: dict[str, bytes]) -> importlib.metadata.Distribution:
    """A distribution as an installer leaves it in `site`: its files, a dist-info and a RECORD of them."""
    info = f"{name}-1.0.dist-info"
    wheel = "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n" + "".join(f"Tag: {t}\n" for t in tags)
    files = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{info}/WHEEL": wheel.encode(),
        f"{info}/INSTALLER": b"uv\n",
    }
    rows = []
    for relative, content in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_bytes(content)
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        rows.append(f"{relative},sha256={digest},{len(content)}\n")
    (site / info / "RECORD").write_text("".join(rows) + f"{info}/RECORD,,\n")
    return importlib.metadata.Distribution.at(site / info)
