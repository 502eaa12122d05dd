"""A release's core metadata for people: where to read it (a wheel's METADATA, an sdist's PKG-INFO), its summary,
and its description rendered to safe HTML the way Warehouse renders it (readme_renderer, sanitized with nh3)."""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message
from functools import lru_cache
from typing import BinaryIO

from packaging.metadata import parse_email
from readme_renderer import markdown, rst, txt
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from packyard.bounded_tar import BoundedTarFile
from packyard.repository.models import CoreMetadata
from packyard.storage import BlobStore

MAX_PKG_INFO = 1024 * 1024
# The headers of METADATA come before the description; the summary is among the first lines.
SUMMARY_PREFIX = 8192
_PREFIXES = select(CoreMetadata.sha256, func.substr(CoreMetadata.data, 1, SUMMARY_PREFIX)).where(
    CoreMetadata.sha256.in_(bindparam("digests", expanding=True))
)
# Permalink anchors readme_renderer adds to headings have no text: screen readers would announce empty links.
_EMPTY_ANCHOR = re.compile(r'<a [^>]*href="#[^"]*"[^>]*>\s*</a>')
# An image a README gives no alternative text is announced by its file name: mark it decorative instead.
_IMG_WITHOUT_ALT = re.compile(r"<img(?![^>]*\balt=)")
# A description sits under its page's own headings: its `<h1>` becomes an `<h3>`, and so on down to `<h6>`.
_HEADING = re.compile(r"<(/?)h([1-6])\b")


@dataclass(frozen=True)
class ProjectMetadata:
    """What a release says about itself, parsed leniently: a field that does not parse is left empty."""

    summary: str = ""
    description_html: str = ""
    requires_python: str = ""
    requires_dist: tuple[str, ...] = ()
    license: str = ""
    author: str = ""
    home_page: str = ""
    project_urls: tuple[tuple[str, str], ...] = ()
    keywords: tuple[str, ...] = ()
    classifiers: tuple[str, ...] = field(default=())


def parse(data: bytes) -> ProjectMetadata:
    raw, _ = parse_email(data)
    description = raw.get("description") or ""
    urls = tuple((label, url) for label, url in (raw.get("project_urls") or {}).items() if _is_web_url(url))
    author = raw.get("author") or raw.get("author_email") or raw.get("maintainer") or ""
    return ProjectMetadata(
        summary=(raw.get("summary") or "").strip(),
        description_html=render_description(description, raw.get("description_content_type") or ""),
        requires_python=raw.get("requires_python") or "",
        requires_dist=tuple(raw.get("requires_dist") or ()),
        license=raw.get("license_expression") or _short_license(raw.get("license") or ""),
        author=author,
        home_page=(raw.get("home_page") or "") if _is_web_url(raw.get("home_page") or "") else "",
        project_urls=urls,
        keywords=tuple(raw.get("keywords") or ()),
        classifiers=tuple(raw.get("classifiers") or ()),
    )


def _is_web_url(url: str) -> bool:
    """Only http(s) links go into a page: a `javascript:` URL in metadata must not become a link."""
    return url.lower().startswith(("https://", "http://"))


def _short_license(text: str) -> str:
    """Some projects paste the whole licence into `License`; a page shows its first line."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= 100 else first[:97] + "..."


@lru_cache(maxsize=256)
def render_description(text: str, content_type: str) -> str:
    """HTML for a description: Markdown (GFM unless a `variant` says CommonMark), reStructuredText (also when no
    type is given, as on PyPI) or plain text; reStructuredText that does not parse is shown as plain text."""
    if not text.strip():
        return ""
    header = Message()
    header["content-type"] = content_type or "text/x-rst"
    kind = header.get_content_type()
    if kind == "text/markdown":
        variant = str(header.get_param("variant") or "GFM")
        html = markdown.render(text, variant=variant if variant in markdown.variants else "GFM")
    elif kind == "text/plain":
        html = txt.render(text)
    else:
        html = rst.render(text, stream=io.StringIO())
    if html is None:
        html = txt.render(text)
    html = _IMG_WITHOUT_ALT.sub('<img alt=""', _EMPTY_ANCHOR.sub("", html or ""))
    return _HEADING.sub(lambda m: f"<{m[1]}h{min(int(m[2]) + 2, 6)}", html)


def summary_of(data: bytes) -> str:
    """The `Summary` header of a METADATA (or of its first bytes): no need to parse the description."""
    head = data.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    for line in head.splitlines():
        if line[:8].lower() == b"summary:":
            return line[8:].strip().decode("utf-8", "replace")
    return ""


def read_pkg_info(file: BinaryIO, filename: str) -> bytes | None:
    """PKG-INFO from an sdist (`.tar.gz` or `.zip`; `file` is seekable), or None when it has none."""
    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(file) as archive:
                name = next((n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/PKG-INFO")), None)
                if name is None or archive.getinfo(name).file_size > MAX_PKG_INFO:
                    return None
                return archive.read(name)
        with BoundedTarFile.open(fileobj=file, mode="r:*") as archive:
            for member in archive:
                if member.name.count("/") == 1 and member.name.endswith("/PKG-INFO") and member.isfile():
                    if member.size > MAX_PKG_INFO:
                        return None
                    handle = archive.extractfile(member)
                    return handle.read() if handle is not None else None
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError):
        return None
    return None


@dataclass(frozen=True)
class MetadataSource:
    """Where one file's core metadata can be read: its `.metadata` digest (wheels), or the file itself (sdists)."""

    sha256: str
    filename: str
    packagetype: str
    metadata_sha256: str | None


def best_source(files: Iterable[MetadataSource]) -> MetadataSource | None:
    """A wheel's METADATA is in the database; an sdist's PKG-INFO means opening the archive."""
    ordered = sorted(files, key=lambda f: (f.metadata_sha256 is None, f.packagetype != "sdist", f.filename))
    return ordered[0] if ordered else None


def read_metadata(session: Session, store: BlobStore, source: MetadataSource) -> bytes | None:
    if source.metadata_sha256:
        row = session.get(CoreMetadata, source.metadata_sha256)
        if row is not None:
            return row.data
        if store.exists(source.metadata_sha256):  # stored as a blob before migration 0003
            return store.read(source.metadata_sha256)
    if source.packagetype == "sdist" and store.exists(source.sha256):
        with store.open(source.sha256) as file:
            return read_pkg_info(file, source.filename)
    return None


class Summaries:
    """Summaries by metadata digest, kept for the life of the process: what a digest names never changes."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._known: dict[str, str] = {}

    def lookup(self, session: Session, store: BlobStore, sources: list[MetadataSource]) -> dict[str, str]:
        """Each source's file sha256 -> its summary ("" when nothing is known yet)."""
        key = {s.sha256: s.metadata_sha256 or s.sha256 for s in sources}
        missing = [s for s in sources if key[s.sha256] not in self._known]
        wanted = sorted({s.metadata_sha256 for s in missing if s.metadata_sha256})
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            params = {"digests": wanted[start : start + 500]}
            found.update((digest, summary_of(bytes(head))) for digest, head in session.execute(_PREFIXES, params))
        if len(self._known) + len(missing) > self.limit:
            self._known.clear()
        for s in missing:
            if s.metadata_sha256 in found:
                self._known[key[s.sha256]] = found[s.metadata_sha256]
                continue
            # Not in the database: a blob from before migration 0003, an sdist's PKG-INFO, or (a mirrored file
            # not downloaded yet) nothing, which is not remembered so the summary shows once it arrives.
            data = None
            if s.metadata_sha256 and store.exists(s.metadata_sha256):
                data = store.read(s.metadata_sha256)
            elif s.packagetype == "sdist" and store.exists(s.sha256):
                with store.open(s.sha256) as file:
                    data = read_pkg_info(file, s.filename) or b""
            if data is not None:
                self._known[key[s.sha256]] = summary_of(data)
        return {s.sha256: self._known.get(key[s.sha256], "") for s in sources}
