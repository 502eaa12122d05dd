"""Read an upstream simple index page (PEP 691 JSON where offered, PEP 503 HTML otherwise) into plain records."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin

from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
# Upstream hashes go into pages (an `href` fragment, a `data-` attribute) and into blob paths: anything but 64 hex
# digits is dropped here, where they are read, so no other code has to distrust them.
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHOWN = 80  # characters of a bad value quoted in the log


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
    skipped: int  # files without a valid sha256 or with a name that is not a wheel or sdist
    problems: list[str] = field(default_factory=list)  # hashes dropped as not sha256 hex digits, for the log


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


def sha256_hex(value: object) -> str | None:
    """An upstream's sha256 as 64 lowercase hex digits; None for anything else."""
    if not isinstance(value, str) or len(value) != 64:
        return None
    digest = value.lower()
    return digest if _SHA256.fullmatch(digest) else None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _metadata_hash(value: object, filename: str, problems: list[str]) -> str | None:
    """The sha256 of a file's `.metadata` (PEP 658/714): `{"sha256": ...}` in JSON, `sha256=...` in HTML."""
    if isinstance(value, dict):
        digest = value.get("sha256")
    elif isinstance(value, str) and value.startswith("sha256="):
        digest = value.removeprefix("sha256=")
    else:
        return None  # `true`, or no `.metadata`: nothing to check it against, so it is not offered
    checked = sha256_hex(digest)
    if checked is None:
        problems.append(f"{filename}: `.metadata` sha256 {_shown(digest)} is not 64 hex digits; metadata not offered")
    return checked


def _file(
    page_url: str,
    href: str,
    filename: str,
    hashes: object,
    problems: list[str],
    *,
    size: object = None,
    upload_time: object = None,
    requires_python: object = None,
    yanked: object = False,
    metadata: object = None,
) -> UpstreamFile | None:
    kind = _kind(filename)
    if kind is None:
        return None
    given = hashes.get("sha256") if isinstance(hashes, dict) else None
    sha256 = sha256_hex(given)
    if sha256 is None:
        if given is not None:
            problems.append(f"{filename}: sha256 {_shown(given)} is not 64 hex digits; file not mirrored")
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
        metadata_sha256=_metadata_hash(metadata, filename, problems),
    )


def parse_json(page_url: str, body: bytes, etag: str) -> UpstreamPage:
    data = json.loads(body)
    files: list[UpstreamFile] = []
    problems: list[str] = []
    skipped = 0
    for item in data.get("files", []):
        core = item.get("core-metadata", item.get("dist-info-metadata", item.get("data-dist-info-metadata")))
        parsed = _file(
            page_url,
            item["url"],
            item["filename"],
            item.get("hashes"),
            problems,
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
    return UpstreamPage(data.get("name", ""), files, etag, skipped, problems)


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
    files: list[UpstreamFile] = []
    problems: list[str] = []
    skipped = 0
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
            problems,
            requires_python=attrs.get("data-requires-python"),
            yanked=False if yanked is None else yanked,
            metadata=attrs.get("data-core-metadata") or attrs.get("data-dist-info-metadata"),
        )
        if parsed is None:
            skipped += 1
        else:
            files.append(parsed)
    return UpstreamPage("", files, etag, skipped, problems)


def parse_page(page_url: str, content_type: str, body: bytes, etag: str) -> UpstreamPage:
    if content_type.split(";")[0].strip() in (JSON_TYPE, "application/json"):
        return parse_json(page_url, body, etag)
    return parse_html(page_url, body, etag)
