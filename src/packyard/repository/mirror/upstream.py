"""Read an upstream simple index page (PEP 691 JSON where offered, PEP 503 HTML otherwise) into plain records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin

from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


@dataclass(frozen=True)
class UpstreamFile:
    filename: str
    url: str
    version: str
    packagetype: str
    sha256: str
    size: int | None
    upload_time: datetime | None
    requires_python: str | None
    yanked: bool
    yanked_reason: str
    metadata_sha256: str | None


@dataclass(frozen=True)
class UpstreamPage:
    name: str
    files: list[UpstreamFile]
    etag: str
    skipped: int  # files without a sha256 or with a name that is not a wheel or sdist


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _kind(filename: str) -> tuple[str, str] | None:
    """(version, packagetype) from a distribution filename; None for eggs, installers and the unparseable."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1]), "bdist_wheel"
        return str(parse_sdist_filename(filename)[1]), "sdist"
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def _metadata_hash(value: object) -> str | None:
    if isinstance(value, dict):
        digest = value.get("sha256")
        return digest if isinstance(digest, str) else None
    if isinstance(value, str) and value.startswith("sha256="):
        return value.removeprefix("sha256=")
    return None


def _file(
    page_url: str,
    href: str,
    filename: str,
    hashes: dict[str, str],
    *,
    size: object = None,
    upload_time: object = None,
    requires_python: object = None,
    yanked: object = False,
    metadata: object = None,
) -> UpstreamFile | None:
    kind = _kind(filename)
    sha256 = hashes.get("sha256", "").lower()
    if kind is None or len(sha256) != 64:
        return None
    url, fragment = urldefrag(urljoin(page_url, href))
    return UpstreamFile(
        filename=filename,
        url=url,
        version=kind[0],
        packagetype=kind[1],
        sha256=sha256,
        size=size if isinstance(size, int) else None,
        upload_time=_parse_time(upload_time),
        requires_python=requires_python if isinstance(requires_python, str) and requires_python else None,
        yanked=yanked is not False and yanked is not None,
        yanked_reason=yanked if isinstance(yanked, str) else "",
        metadata_sha256=_metadata_hash(metadata),
    )


def parse_json(page_url: str, body: bytes, etag: str) -> UpstreamPage:
    data = json.loads(body)
    files, skipped = [], 0
    for item in data.get("files", []):
        core = item.get("core-metadata", item.get("dist-info-metadata", item.get("data-dist-info-metadata")))
        parsed = _file(
            page_url,
            item["url"],
            item["filename"],
            item.get("hashes") or {},
            size=item.get("size"),
            upload_time=item.get("upload-time"),
            requires_python=item.get("requires-python"),
            yanked=item.get("yanked", False),
            metadata=core,
        )
        if parsed is None:
            skipped += 1
        else:
            files.append(parsed)
    return UpstreamPage(data.get("name", ""), files, etag, skipped)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.links.append((self._open, "".join(self._text).strip()))
            self._open = None


def parse_html(page_url: str, body: bytes, etag: str) -> UpstreamPage:
    parser = _Links()
    parser.feed(body.decode("utf-8", errors="replace"))
    files, skipped = [], 0
    for attrs, text in parser.links:
        href = attrs.get("href") or ""
        _, fragment = urldefrag(href)
        algorithm, _, digest = fragment.partition("=")
        filename = text or href.rsplit("/", 1)[-1].split("#", 1)[0]
        yanked = attrs.get("data-yanked")
        parsed = _file(
            page_url,
            href,
            filename,
            {algorithm: digest} if digest else {},
            requires_python=attrs.get("data-requires-python"),
            yanked=False if yanked is None else yanked,
            metadata=attrs.get("data-core-metadata") or attrs.get("data-dist-info-metadata"),
        )
        if parsed is None:
            skipped += 1
        else:
            files.append(parsed)
    return UpstreamPage("", files, etag, skipped)


def parse_page(page_url: str, content_type: str, body: bytes, etag: str) -> UpstreamPage:
    if content_type.split(";")[0].strip() in (JSON_TYPE, "application/json"):
        return parse_json(page_url, body, etag)
    return parse_html(page_url, body, etag)
