"""Open the uploaded wheel or sdist and read its core metadata; never trust the form alone."""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from packaging.metadata import parse_email
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from packyard.bounded_tar import BoundedTarFile
from packyard.errors import HeaderTooLarge
from packyard.repository.errors import UploadRejected

MAX_METADATA_SIZE = 16 * 1024 * 1024
# A wheel may unpack to this many times its size before we call it a zip bomb (Warehouse uses a ratio too).
MAX_COMPRESSION_RATIO = 100
RATIO_FLOOR = 64 * 1024 * 1024
_REBUILD_SDIST = "rebuild the sdist with `uv build --sdist` or `python -m build --sdist`"


@dataclass(frozen=True)
class DistMetadata:
    name: str
    version: Version
    requires_python: str | None
    raw: bytes
    metadata_version: str = ""
    display_name: str = ""


def _parse_metadata(raw: bytes, filename: str, where: str) -> DistMetadata:
    fields, _unparsed = parse_email(raw)
    name, version = fields.get("name"), fields.get("version")
    if not name or not version:
        raise UploadRejected(f"`{where}` in {filename!r} has no Name or Version; rebuild the distribution.")
    try:
        parsed_version = Version(version)
    except InvalidVersion as exc:
        raise UploadRejected(f"`{where}` in {filename!r} has invalid version {version!r}.") from exc
    requires_python = fields.get("requires_python") or None
    if requires_python:
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier as exc:
            raise UploadRejected(
                f"`{where}` in {filename!r} has invalid Requires-Python "
                f"{requires_python!r}; use a specifier such as `>=3.9`."
            ) from exc
    return DistMetadata(
        canonicalize_name(name), parsed_version, requires_python, raw, fields.get("metadata_version", ""), name
    )


def inspect_wheel(file: BinaryIO, filename: str) -> DistMetadata:
    """`file` is seekable: a staged upload opened for reading, or a wheel on disk (`packyard add`)."""
    try:
        size = file.seek(0, os.SEEK_END)
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadRejected(
            f"{filename!r} is not a valid zip archive, so it is not a wheel; "
            "rebuild it with `uv build` or `python -m build`."
        ) from exc
    with archive:
        infos = archive.infolist()
        for info in infos:
            if info.filename.startswith(("/", "\\")) or ".." in info.filename.replace("\\", "/").split("/"):
                raise UploadRejected(f"{filename!r} contains an unsafe path {info.filename!r}.")
        unpacked = sum(i.file_size for i in infos)
        if unpacked > RATIO_FLOOR and unpacked > MAX_COMPRESSION_RATIO * max(size, 1):
            raise UploadRejected(
                f"{filename!r} unpacks to {unpacked} bytes, over {MAX_COMPRESSION_RATIO} times "
                "its size; it looks like a zip bomb."
            )
        dist_infos = {
            n.split("/")[0] for n in archive.namelist() if n.count("/") == 1 and n.split("/")[0].endswith(".dist-info")
        }
        metadata_name = next(
            (f"{d}/METADATA" for d in sorted(dist_infos) if f"{d}/METADATA" in archive.namelist()), None
        )
        if metadata_name is None:
            raise UploadRejected(
                f"Wheel {filename!r} does not contain the required METADATA file "
                "(`<name>-<version>.dist-info/METADATA`); rebuild it."
            )
        dist_info = metadata_name.split("/")[0]
        if f"{dist_info}/RECORD" not in archive.namelist():
            raise UploadRejected(f"Wheel {filename!r} does not contain a RECORD file; rebuild it.")
        info = archive.getinfo(metadata_name)
        if info.file_size > MAX_METADATA_SIZE:
            raise UploadRejected(f"METADATA in {filename!r} is larger than {MAX_METADATA_SIZE} bytes.")
        try:
            raw = archive.read(metadata_name)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise UploadRejected(f"METADATA in {filename!r} cannot be read ({exc}); the wheel is corrupt.") from exc
    return _parse_metadata(raw, filename, metadata_name)


@contextmanager
def tar_members(file: BinaryIO, filename: str, rebuild: str) -> Iterator[tuple[tarfile.TarFile, list[tarfile.TarInfo]]]:
    """An uploaded gzip-compressed tar and its members (headers bounded); each way it can be unreadable is an
    `UploadRejected` ending with how to `rebuild` it."""
    try:
        file.seek(0)
        archive = BoundedTarFile.open(fileobj=file, mode="r:gz")
    except HeaderTooLarge as exc:
        raise UploadRejected(f"{filename!r} has {exc}; {rebuild}.") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UploadRejected(f"{filename!r} is not a valid gzip-compressed tar archive; {rebuild}.") from exc
    with archive:
        try:
            members = archive.getmembers()
        except HeaderTooLarge as exc:
            raise UploadRejected(f"{filename!r} has {exc}; {rebuild}.") from exc
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise UploadRejected(f"{filename!r} is a corrupt tar archive ({exc}); {rebuild}.") from exc
        yield archive, members


def inspect_sdist(file: BinaryIO, filename: str) -> DistMetadata:
    with tar_members(file, filename, _REBUILD_SDIST) as (archive, members):
        pkg_info = next(
            (m for m in members if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO") and m.isfile()), None
        )
        if pkg_info is None:
            raise UploadRejected(f"Sdist {filename!r} has no `<name>-<version>/PKG-INFO`; rebuild it.")
        if pkg_info.size > MAX_METADATA_SIZE:
            raise UploadRejected(f"PKG-INFO in {filename!r} is larger than {MAX_METADATA_SIZE} bytes.")
        handle = archive.extractfile(pkg_info)
        assert handle is not None
        raw = handle.read()
    return _parse_metadata(raw, filename, pkg_info.name)
