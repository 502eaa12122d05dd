"""Unpack an uploaded bundle (a tar.gz made by rsconnect) atomically, find its manifest, read its package file.

The tar members themselves are checked and written by `tar.unpack_tar`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from packyard.publishing.bundles.manifest import (
    Manifest,
    parse_manifest,
)
from packyard.publishing.bundles.tar import unpack_tar
from packyard.publishing.environments.plan import MAX_FILE_SIZE
from packyard.publishing.errors import BundleError

MANIFEST = "manifest.json"
MAX_MANIFEST_SIZE = 16 * 1024 * 1024
MAX_PACKAGE_FILE_SIZE = MAX_FILE_SIZE  # the requirements file is read whole, then parsed line by line


def extract_bundle(archive: Path, dest: Path, *, max_bytes: int, max_entries: int) -> Manifest:
    """Unpack `archive` into `dest` (which appears complete or not at all) and return its manifest."""
    if dest.is_dir():
        return _load_manifest(dest)  # an earlier extraction of the same bundle finished
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        tree = staging / "tree"
        tree.mkdir()
        unpack_tar(archive, tree, max_bytes=max_bytes, max_entries=max_entries)
        root = _bundle_root(tree)
        manifest = _load_manifest(root)
        if manifest.needs_python:
            _package_file_path(root, manifest)
        try:
            os.rename(root, dest)
        except OSError:
            if dest.is_dir():  # a concurrent extraction of the same bundle got there first
                return _load_manifest(dest)
            raise
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_requirements(root: Path, manifest: Manifest) -> str:
    """The text of the bundle's package file (usually requirements.txt) in the unpacked bundle at `root`."""
    path = _package_file_path(root, manifest)
    size = path.stat().st_size
    if size > MAX_PACKAGE_FILE_SIZE:
        raise BundleError(
            f"The bundle's {manifest.package_file} is {size:,} bytes, over the limit of "
            f"{MAX_PACKAGE_FILE_SIZE >> 20} MiB; list only the packages the app needs (`pip freeze` in its own "
            "virtual environment) and deploy again."
        )
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # pip accepts a UTF-8 byte-order mark, so we do too
    except UnicodeDecodeError as exc:
        raise BundleError(
            f"The bundle's {manifest.package_file} is not UTF-8 text (byte {data[exc.start : exc.start + 1]!r} at "
            f"position {exc.start}); save it as UTF-8 (PowerShell's `>` writes UTF-16) and deploy again."
        ) from exc


def _package_file_path(root: Path, manifest: Manifest) -> Path:
    name = manifest.package_file
    if name is None:
        raise BundleError(
            f"The bundle's manifest.json has no `python` section, so it names no package file for "
            f"{manifest.appmode!r} content; deploy with rsconnect, which writes one."
        )
    path = root / name
    # parse_manifest refuses such names; a Manifest built by hand must not read outside the bundle either.
    if not path.resolve().is_relative_to(root.resolve()) or not path.is_file():
        package_manager = (manifest.raw.get("python") or {}).get("package_manager") or {}
        named = (
            "named by manifest.json `python.package_manager.package_file`"
            if "package_file" in package_manager
            else "the package file when manifest.json names none"
        )
        raise BundleError(
            f"The bundle has no {name} ({named}); add it to the bundle (e.g. `pip freeze > {name}`), "
            "or deploy with rsconnect, which writes it."
        )
    return path


def _load_manifest(root: Path) -> Manifest:
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(
            "The bundle has no manifest.json at its root; deploy with rsconnect, or write one with "
            "`rsconnect write-manifest`."
        )
    size = path.stat().st_size
    if size > MAX_MANIFEST_SIZE:
        raise BundleError(
            f"The bundle's manifest.json is {size:,} bytes, over the limit of {MAX_MANIFEST_SIZE >> 20} MiB; "
            "write it with `rsconnect write-manifest`."
        )
    return parse_manifest(path.read_bytes())


def _bundle_root(tree: Path) -> Path:
    """Connect's rule (connect-api.md 6.1): while the root holds exactly one entry and it is a directory, descend."""
    root = tree
    while True:
        entries = list(root.iterdir())
        if len(entries) != 1 or not entries[0].is_dir():
            return root
        root = entries[0]
