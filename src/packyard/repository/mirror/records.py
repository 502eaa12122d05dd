"""Store what an upstream page says as the mirror source's projects and files (one transaction)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.changelog.events import record
from packyard.db import utcnow
from packyard.repository.index import indexer
from packyard.repository.mirror.upstream import UpstreamPage
from packyard.repository.models import DistFile, MirrorPage, Project

UPLOADED_BY = "upstream"


def mirror_page(session: Session, source_id: int, name: str) -> MirrorPage | None:
    return session.get(MirrorPage, (source_id, name))


def mark_fetched(session: Session, source_id: int, name: str, found: bool, etag: str, at: datetime) -> None:
    page = session.get(MirrorPage, (source_id, name))
    if page is None:
        session.add(MirrorPage(source_id=source_id, name=name, found=found, etag=etag, fetched_at=at))
    else:
        page.found, page.etag, page.fetched_at = found, etag, at


def apply_page(session: Session, source_id: int, name: str, upstream: UpstreamPage) -> bool:
    """Bring the source's copy of `name` in line with the upstream page; True when anything changed.

    New files are recorded (their bytes arrive on first request), yanks and unyanks are logged with their
    time, and files the upstream no longer lists are marked deleted, so older snapshots still show them.
    """
    now = utcnow()
    project = session.scalar(select(Project).where(Project.source_id == source_id, Project.name == name))
    new_project = project is None
    if project is None:
        project = Project(source_id=source_id, name=name, display_name=upstream.name or name, created_at=now)
        session.add(project)
        session.flush()
    existing = {f.filename: f for f in session.scalars(select(DistFile).where(DistFile.project_id == project.id))}
    listed = set()
    changes: list[tuple[str, str, str, datetime]] = []  # (kind, filename, reason, at)
    for up in upstream.files:
        listed.add(up.filename)
        row = existing.get(up.filename)
        if row is None:
            uploaded_at = up.upload_time or now
            session.add(
                DistFile(
                    source_id=source_id,
                    project_id=project.id,
                    version=up.version,
                    filename=up.filename,
                    packagetype=up.packagetype,
                    requires_python=up.requires_python,
                    size=up.size or 0,
                    sha256=up.sha256,
                    blake2_256="",
                    md5="",
                    metadata_sha256=up.metadata_sha256,
                    yanked=up.yanked,
                    yanked_reason=up.yanked_reason,
                    uploaded_at=uploaded_at,
                    uploaded_by=UPLOADED_BY,
                    url=up.url,
                )
            )
            changes.append(("mirror", up.filename, up.sha256, now))
            if up.yanked:
                # First seen yanked: we cannot know since when, so every snapshot that shows it shows it yanked.
                changes.append(("yank", up.filename, up.yanked_reason, uploaded_at))
            continue
        if row.sha256 != up.sha256:
            continue  # published files are immutable: keep the bytes already promised to clients
        if row.deleted_at is not None:
            row.deleted_at = None
            changes.append(("mirror", up.filename, up.sha256, now))
        if row.yanked != up.yanked or (up.yanked and row.yanked_reason != up.yanked_reason):
            row.yanked, row.yanked_reason = up.yanked, up.yanked_reason
            changes.append(("yank" if up.yanked else "unyank", up.filename, up.yanked_reason, now))
        if row.requires_python != up.requires_python or (up.size and row.size != up.size):
            row.requires_python = up.requires_python
            row.size = up.size or row.size
            changes.append(("mirror", up.filename, up.sha256, now))
        if up.url != row.url:
            row.url = up.url
    for filename, row in existing.items():
        if filename not in listed and row.deleted_at is None:
            row.deleted_at = now
            changes.append(("delete", filename, "removed upstream", now))
    if not changes:
        return False
    serial = 0
    for kind, filename, detail, at in changes:
        serial = record(session, kind, at=at, source_id=source_id, project=name, filename=filename, detail=detail)
    indexer.source_changed(session, source_id, name, serial, new_project)
    return True
