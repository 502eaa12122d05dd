"""Tar archives from users (sdists, bundles) read with bounded extended headers.

Python's tarfile reads a pax header or a GNU long name of whatever size its 512-byte header declares into memory,
and follows a chain of them by recursion; an archive of a few kilobytes of gzip can declare gigabytes. Opened
through `BoundedTarFile`, each such header is checked against the limits before a byte of it is read.
"""

from __future__ import annotations

import tarfile

from packyard.errors import HeaderTooLarge

MAX_HEADER_SIZE = 1024 * 1024  # one pax header or long name; real ones are a few hundred bytes
MAX_CHAINED_HEADERS = 16  # extended headers in front of one member (tar writers put one to three there)
MAX_TOTAL_HEADER_SIZE = 64 * 1024 * 1024  # every extended header of the archive: tarfile keeps each member's
_KINDS = {
    tarfile.XHDTYPE: "pax extended header",
    tarfile.SOLARIS_XHDTYPE: "pax extended header",
    tarfile.XGLTYPE: "pax global header",
    tarfile.GNUTYPE_LONGNAME: "GNU long name",
    tarfile.GNUTYPE_LONGLINK: "GNU long link name",
}


class _BoundedTarInfo(tarfile.TarInfo):
    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        kind = _KINDS.get(self.type)
        if isinstance(archive, BoundedTarFile):
            if kind is None:
                archive.chained_headers = 0
            else:
                archive.check_header(kind, self.size)
        # tarfile documents _proc_member as the method a subclass overrides; typeshed leaves it out.
        return super()._proc_member(archive)  # type: ignore[misc]


class BoundedTarFile(tarfile.TarFile):
    """`tarfile.TarFile` that raises HeaderTooLarge for an extended header past the limits; open it with
    `BoundedTarFile.open(...)` as with `tarfile.open`."""

    tarinfo = _BoundedTarInfo
    chained_headers = 0
    header_bytes = 0

    def check_header(self, kind: str, size: int) -> None:
        if size > MAX_HEADER_SIZE:
            raise HeaderTooLarge(
                f"a {kind} of {size:,} bytes, over the limit of {MAX_HEADER_SIZE >> 20} MiB for one header"
            )
        self.chained_headers += 1
        if self.chained_headers > MAX_CHAINED_HEADERS:
            raise HeaderTooLarge(f"more than {MAX_CHAINED_HEADERS} extended headers in front of one member")
        self.header_bytes += size
        if self.header_bytes > MAX_TOTAL_HEADER_SIZE:
            raise HeaderTooLarge(
                f"extended headers of more than {MAX_TOTAL_HEADER_SIZE >> 20} MiB in all (the last a {kind})"
            )
