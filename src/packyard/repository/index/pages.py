"""Simple-API pages (PEP 503 HTML and PEP 691 JSON, api-version 1.4) built from one context."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from html import escape

API_VERSION = "1.4"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class FileEntry:
    filename: str
    url: str
    sha256: str
    size: int
    upload_time: datetime
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str = ""
    metadata_sha256: str | None = None
    signed: bool = False


@dataclass(frozen=True)
class ProjectContext:
    name: str
    versions: list[str]
    files: list[FileEntry]


@dataclass(frozen=True)
class RenderedPage:
    html: bytes
    json: bytes
    etag: str


def file_url(project: str, sha256: str, filename: str) -> str:
    """Relative to a project page, so the same page works under `latest` and under a dated snapshot."""
    return f"../../packages/{project}/{sha256}/{filename}"


def _upload_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _finish(html: str, data: Mapping[str, object]) -> RenderedPage:
    html_bytes = html.encode()
    json_bytes = json.dumps(data, separators=(",", ":")).encode()
    etag = hashlib.sha256(html_bytes + b"\0" + json_bytes).hexdigest()[:32]
    return RenderedPage(html_bytes, json_bytes, etag)


def render_project(ctx: ProjectContext) -> RenderedPage:
    links = []
    files = []
    for f in ctx.files:
        # Hashes are hex digits by the time they get here (mirror/upstream.py checks an upstream's); escaped anyway.
        attrs = [f'href="{escape(f.url)}#sha256={escape(f.sha256)}"']
        if f.requires_python:
            attrs.append(f'data-requires-python="{escape(f.requires_python)}"')
        if f.yanked:
            attrs.append(f'data-yanked="{escape(f.yanked_reason)}"')
        if f.metadata_sha256:
            meta = f"sha256={escape(f.metadata_sha256)}"
            attrs.append(f'data-dist-info-metadata="{meta}" data-core-metadata="{meta}"')
        attrs.append(f'data-gpg-sig="{"true" if f.signed else "false"}"')
        links.append(f"    <a {' '.join(attrs)}>{escape(f.filename)}</a><br />")
        metadata: object = {"sha256": f.metadata_sha256} if f.metadata_sha256 else False
        files.append(
            {
                "filename": f.filename,
                "url": f.url,
                "hashes": {"sha256": f.sha256},
                "requires-python": f.requires_python,
                "size": f.size,
                "upload-time": _upload_time(f.upload_time),
                "yanked": (f.yanked_reason or True) if f.yanked else False,
                "core-metadata": metadata,
                "data-dist-info-metadata": metadata,
                "gpg-sig": f.signed,
                "provenance": None,
            }
        )
    name = escape(ctx.name)
    html = (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"    <title>Links for {name}</title>\n  </head>\n  <body>\n"
        f"    <h1>Links for {name}</h1>\n" + "\n".join(links) + "\n  </body>\n</html>\n"
    )
    data = {
        "meta": {"api-version": API_VERSION},
        "name": ctx.name,
        "versions": ctx.versions,
        "files": files,
    }
    return _finish(html, data)


def render_root(names: list[tuple[str, str]]) -> RenderedPage:
    """`names` holds (normalized, display) pairs, already sorted."""
    links = "\n".join(f'    <a href="{n}/">{escape(d)}</a><br />' for n, d in names)
    html = (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        "    <title>Simple index</title>\n  </head>\n  <body>\n" + links + "\n  </body>\n</html>\n"
    )
    data = {"meta": {"api-version": API_VERSION}, "projects": [{"name": d} for _, d in names]}
    return _finish(html, data)
