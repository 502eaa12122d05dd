"""Unpack a tar or tar.gz into an empty directory, refusing anything that could write outside it or fill the disk.

Nothing here calls tarfile's own extraction: each member is checked and written by hand, and links are
written as copies of what they point to, so the unpacked tree holds no links and no write can leave it.
"""

from __future__ import annotations

import bisect
import errno
import gzip
import io
import json
import os
import shutil
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from packyard.bounded_tar import BoundedTarFile
from packyard.errors import HeaderTooLarge
from packyard.publishing.errors import BundleError

# Tar headers, long-name records and padding are not file data; the decompressed stream may exceed the data limit
# by this per entry. One pax header or long name is bounded on its own (`bounded_tar`), before it is read.
HEADER_ALLOWANCE = 4096
# Linux follows at most 40 links in a path (ELOOP); a longer chain of links in a bundle is refused the same way.
MAX_LINK_DEPTH = 40
CHUNK = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
OTHER_FORMATS = {
    b"PK\x03\x04": "a zip archive",
    b"BZh": "a bzip2 file",
    b"\xfd7zXZ\x00": "an xz file",
    b"\x28\xb5\x2f\xfd": "a zstd file",
    b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive",
}
_REUPLOAD = "upload the .tar.gz that rsconnect makes"


def unpack_tar(archive: Path, tree: Path, *, max_bytes: int, max_entries: int) -> None:
    """Write the members of `archive` (gzip-compressed or not) under the empty directory `tree`."""
    with archive.open("rb") as raw:
        head = raw.read(512)
        raw.seek(0)
        if head.startswith(GZIP_MAGIC):
            source: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb")
        elif head[257:262] == b"ustar":  # an uncompressed POSIX or GNU tar
            source = raw
        else:
            raise BundleError(f"The bundle is not a gzip-compressed tar archive ({_describe(head)}); {_REUPLOAD}.")
        stream = _CappedStream(source, cap=max_bytes + (max_entries + 3) * HEADER_ALLOWANCE)
        try:
            # A stream ("r|") is only read, so the file object needs no seek, tell or write.
            with BoundedTarFile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
                writer = _TreeWriter(tree, tar, max_bytes=max_bytes, max_entries=max_entries)
                for member in tar:
                    writer.add(member)
            writer.write_links()
            # Read to the end so gzip checks its CRC and length: a truncated or damaged tail is refused too.
            while stream.read(CHUNK):
                pass
        except HeaderTooLarge as exc:
            raise BundleError(f"The bundle has {exc}; {_REUPLOAD}.") from exc
        except tarfile.TarError as exc:
            raise BundleError(f"The bundle is not a valid tar archive ({exc}); {_REUPLOAD}.") from exc


class _CappedStream:
    """The decompressed tar stream, refused past a cap, with read failures reported as a damaged bundle."""

    def __init__(self, source: io.BufferedIOBase, cap: int) -> None:
        self._source = source
        self._cap = cap
        self._count = 0

    def read(self, size: int = -1) -> bytes:
        want = self._cap + 1 - self._count if size < 0 else size
        try:
            data = self._source.read(min(want, self._cap + 1 - self._count))
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise BundleError(
                f"The bundle is truncated or corrupt ({exc}); upload it again, or rebuild it with rsconnect."
            ) from exc
        self._count += len(data)
        if self._count > self._cap:
            raise BundleError(
                f"The bundle unpacks to more than {_size(self._cap)} of tar data; leave large data out of the "
                "bundle, or ask the administrator to raise `[publishing] bundle_max_size`."
            )
        return data


class _TreeWriter:
    """Writes checked tar members under `tree`; links are recorded and written as copies at the end."""

    def __init__(self, tree: Path, tar: tarfile.TarFile, *, max_bytes: int, max_entries: int) -> None:
        self.tree = tree
        self.tar = tar
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.entries = 0
        self.total = 0
        self.links: dict[str, tuple[str, str]] = {}  # link path -> (entry name, target path), from the bundle root

    def add(self, member: tarfile.TarInfo) -> None:
        name = member.name
        self.entries += 1
        if self.entries > self.max_entries:
            raise BundleError(
                f"Bundle entry {_quote(name)} is past the limit of {self.max_entries:,} entries "
                "(`[publishing] bundle_max_entries`); leave virtual environments and generated files out of the "
                "bundle, or ask the administrator to raise the limit."
            )
        key = _entry_key(name)
        if key == "":
            return  # "." or "./": the root itself
        with _name_errors(name):
            self._add(member, key)

    def _add(self, member: tarfile.TarInfo, key: str) -> None:
        name = member.name
        if key in self.links:
            self._conflict(name)
        path = self.tree / key
        if member.issym() or member.islnk():
            self._add_link(member, key)
        elif member.isdir():
            if path.exists() and not path.is_dir():
                self._conflict(name)
            self._mkdir(path, name)
        elif member.issparse():
            raise BundleError(
                f"Bundle entry {_quote(name)} is a sparse file, which Packyard does not unpack; "
                "make the bundle with rsconnect, or with `tar` without `--sparse`."
            )
        elif member.isfile():
            self._write_file(member, path)
        else:
            kind = {
                tarfile.CHRTYPE: "character device",
                tarfile.BLKTYPE: "block device",
                tarfile.FIFOTYPE: "FIFO",
            }.get(member.type, f"entry of tar type {member.type!r}")
            raise BundleError(
                f"Bundle entry {_quote(name)} is a {kind}, which a bundle cannot hold; "
                "bundle regular files and directories only."
            )

    def _write_file(self, member: tarfile.TarInfo, path: Path) -> None:
        if self.total + member.size > self.max_bytes:
            self._too_large(member.name)
        if path.is_dir():
            self._conflict(member.name)
        self._mkdir(path.parent, member.name)
        source = self.tar.extractfile(member)
        assert source is not None  # extractfile returns None only for non-files
        mode = 0o755 if member.mode & 0o111 else 0o644
        # O_NOFOLLOW: the tree holds no links by construction; this makes sure of it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                self.total += len(chunk)  # the bytes actually written count, whatever the header said
                if self.total > self.max_bytes:
                    self._too_large(member.name)
                out.write(chunk)

    def _add_link(self, member: tarfile.TarInfo, key: str) -> None:
        name, linkname = member.name, member.linkname
        if member.issym():
            # A symlink's target is relative to the link's directory; a hard link's to the archive root.
            joined = os.path.normpath(os.path.join(os.path.dirname(key), linkname))
        else:
            joined = os.path.normpath(linkname)
        if linkname.startswith("/") or joined == ".." or joined.startswith("../") or "\x00" in linkname:
            raise BundleError(
                f"Bundle entry {_quote(name)} is a link to {_quote(linkname)}, which points outside the bundle; "
                "bundle the file itself instead of a link to it."
            )
        if (self.tree / key).exists():
            self._conflict(name)
        self.links[key] = (name, "" if joined == "." else joined)

    def write_links(self) -> None:
        """Write every link as a copy of its target, targets first, so a link to a link copies real content."""
        # Entries inside a link's path were written as a real directory; a link cannot take that path.
        for key, (name, _target) in self.links.items():
            with _name_errors(name):
                clash = (self.tree / key).exists()
            if clash:
                raise BundleError(
                    f"Bundle entry {_quote(name)} is a link, but the bundle also has entries at or inside that path; "
                    "bundle the directory itself instead of a link to it."
                )
        keys = sorted(self.links)
        trie: dict[str, Any] = {}  # path parts -> nested dicts; the "" key (never a part) marks a link
        for key in keys:
            node = trie
            for part in key.split("/"):
                node = node.setdefault(part, {})
            node[""] = key
        done: set[str] = set()

        def dependencies(target: str) -> list[str]:
            """The links the target passes through, is, or holds: written before the target is copied."""
            found: list[str] = []
            node: dict[str, Any] = trie
            for part in target.split("/"):
                child = node.get(part)
                if child is None:
                    break
                node = child
                if "" in node:
                    found.append(node[""])
            # "/" sorts just before "0", so the links under `target` are exactly the keys in this range.
            found += keys[bisect.bisect_left(keys, target + "/") : bisect.bisect_left(keys, target + "0")]
            return found

        def write(key: str, depth: int) -> None:
            name, target = self.links[key]
            if depth > MAX_LINK_DEPTH:
                raise BundleError(
                    f"Bundle entry {_quote(name)} is a link in a chain or loop of more than {MAX_LINK_DEPTH} links; "
                    "bundle the files themselves instead of links to them."
                )
            if target == "" or key == target or key.startswith(target + "/"):
                raise BundleError(
                    f"Bundle entry {_quote(name)} is a link to itself or to a directory that contains it; "
                    "bundle the files themselves instead of a link."
                )
            for dependency in dependencies(target):
                if dependency not in done:
                    write(dependency, depth + 1)
            source = self.tree / target
            if not source.exists():
                raise BundleError(
                    f"Bundle entry {_quote(name)} is a link to {_quote(self.links[key][1])}, which is not in the "
                    "bundle; bundle the file itself, or remove the link."
                )
            self._copy(source, self.tree / key, name)
            done.add(key)

        for key in keys:
            if key not in done:
                with _name_errors(self.links[key][0]):
                    write(key, 0)

    def _copy(self, source: Path, path: Path, name: str) -> None:
        # Every copied file and directory counts against the limits, or links could multiply a small bundle.
        copied = [source] if source.is_file() else list(source.rglob("*"))
        self.entries += len(copied)
        self.total += sum(p.stat().st_size for p in copied if p.is_file())
        if self.entries > self.max_entries:
            raise BundleError(
                f"Bundle entry {_quote(name)} is a link whose copy takes the bundle past the limit of "
                f"{self.max_entries:,} entries (`[publishing] bundle_max_entries`); bundle the files themselves, "
                "or ask the administrator to raise the limit."
            )
        if self.total > self.max_bytes:
            self._too_large(name)
        self._mkdir(path.parent, name)
        if source.is_file():
            shutil.copy(source, path)
        else:
            shutil.copytree(source, path)

    def _mkdir(self, path: Path, name: str) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            self._conflict(name)

    def _too_large(self, name: str) -> None:
        raise BundleError(
            f"Bundle entry {_quote(name)} takes the bundle past {_size(self.max_bytes)} unpacked, the limit "
            "(`[publishing] bundle_max_size`); leave large data out of the bundle and load it at run time, "
            "or ask the administrator to raise the limit."
        )

    def _conflict(self, name: str) -> None:
        raise BundleError(
            f"Bundle entry {_quote(name)} clashes with another entry of the same path (a file, a directory or a "
            "link); make the bundle again with rsconnect."
        )


@contextmanager
def _name_errors(name: str) -> Iterator[None]:
    """Report a name the filesystem refuses as the bundle's fault; any other OSError is the server's."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL):
            raise
        raise BundleError(
            f"Bundle entry {_quote(name)} cannot be written here ({exc.strerror}); shorten or rename it and "
            "deploy again."
        ) from exc


def _entry_key(name: str) -> str:
    """The member's path relative to the bundle root, `a/b` style; refuse any that could leave the bundle."""
    if name.startswith("/"):
        raise BundleError(
            f"Bundle entry {_quote(name)} is an absolute path; a bundle holds paths relative to its root, "
            "as rsconnect writes them."
        )
    if "\x00" in name:
        raise BundleError(f"Bundle entry {_quote(name)} has a NUL byte in its name; make the bundle with rsconnect.")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise BundleError(
            f"Bundle entry {_quote(name)} points outside the bundle; a bundle holds paths relative to its root "
            "without `..`, as rsconnect writes them."
        )
    return "/".join(parts)


def _describe(head: bytes) -> str:
    if not head:
        return "it is empty"
    kind = next((f", {kind}" for magic, kind in OTHER_FORMATS.items() if head.startswith(magic)), "")
    return f"it starts with {head[:8]!r}{kind}"


def _quote(name: str) -> str:
    # tarfile decodes names that are not UTF-8 with surrogate escapes; show those bytes as \\xNN instead.
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = json.dumps(name, ensure_ascii=False)
    return text if len(text) <= 200 else text[:197] + '..."'


def _size(count: int) -> str:
    for unit, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if count >= unit and count % unit == 0:
            return f"{count // unit} {suffix}"
    return f"{count:,} bytes"
