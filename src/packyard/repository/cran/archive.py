"""Open an uploaded R source package (`name_version.tar.gz` holding `name/DESCRIPTION`) and check it."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from packyard.repository.cran import description
from packyard.repository.errors import UploadRejected
from packyard.repository.upload.archive import tar_members

MAX_DESCRIPTION_SIZE = 1024 * 1024
_REBUILD = "build it with `R CMD build <folder>`"


@dataclass(frozen=True)
class RPackage:
    name: str
    version: str
    fields: dict[str, str]
    raw: bytes  # the DESCRIPTION as uploaded


def check_filename(filename: str) -> tuple[str, str]:
    """(name, version) from `name_version.tar.gz`, or UploadRejected naming the rule."""
    match = description.FILENAME.fullmatch(filename)
    if match is None:
        raise UploadRejected(
            f"{filename!r} is not an R source package filename; it must be `<package>_<version>.tar.gz` "
            "(e.g. `mypkg_1.0.2.tar.gz`), as `R CMD build` names it."
        )
    return match.group("name"), match.group("version")


def _unsafe(member: tarfile.TarInfo) -> bool:
    parts = member.name.split("/")
    return member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir())


def inspect_r_package(file: BinaryIO, filename: str) -> RPackage:
    """Name and version from the filename and from `<name>/DESCRIPTION`, which must agree."""
    name, version = check_filename(filename)
    with tar_members(file, filename, _REBUILD) as (archive, members):
        for member in members:
            # R's untar would follow links and write devices; a package has neither, so refuse them outright.
            if _unsafe(member):
                raise UploadRejected(
                    f"{filename!r} contains {member.name[:200]!r}, an absolute path, a `..` or a link or device; "
                    f"an R source package holds only files and folders under `{name}/`; {_REBUILD}."
                )
            if member.name.split("/")[0] != name:
                raise UploadRejected(
                    f"{filename!r} contains {member.name[:200]!r} outside the folder `{name}/`; every file of "
                    f"package `{name}` belongs under `{name}/`; {_REBUILD}."
                )
        found = next((m for m in members if m.name == f"{name}/DESCRIPTION"), None)
        if found is None:
            raise UploadRejected(f"{filename!r} has no `{name}/DESCRIPTION`; {_REBUILD}.")
        if found.size > MAX_DESCRIPTION_SIZE:
            raise UploadRejected(f"`{name}/DESCRIPTION` in {filename!r} is larger than {MAX_DESCRIPTION_SIZE} bytes.")
        handle = archive.extractfile(found)
        assert handle is not None
        try:
            raw = handle.read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise UploadRejected(f"{filename!r} is a corrupt tar archive ({exc}); {_REBUILD}.") from exc
    where = f"{name}/DESCRIPTION"
    fields = description.parse(raw, where)
    for field in ("Package", "Version"):
        if not fields.get(field):
            raise UploadRejected(f"`{where}` in {filename!r} has no `{field}:` field; add it and rebuild.")
    if fields["Package"] != name:
        raise UploadRejected(
            f"`{where}` says `Package: {fields['Package'][:100]}` but the filename says `{name}`; "
            "name the file after the package (R CMD build does)."
        )
    if not description.is_valid_version(fields["Version"]):
        raise UploadRejected(
            f"`{where}` has invalid `Version: {fields['Version'][:100]}`; R versions are at least two integers "
            "separated by `.` or `-`, e.g. `1.0.2` or `1.0-2`."
        )
    if fields["Version"] != version:
        raise UploadRejected(
            f"`{where}` says `Version: {fields['Version']}` but the filename says `{version}`; rebuild the package."
        )
    return RPackage(name, version, fields, raw)
