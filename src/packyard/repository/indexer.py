"""Render a repository's simple pages when its sources change, so reads are a lookup."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from packyard.repository.models import DistFile, Project, Repository, SimplePage, Subscription
from packyard.repository.pages import (
    FileEntry,
    ProjectContext,
    RenderedPage,
    file_url,
    render_project,
    render_root,
)

ROOT = ""


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def project_context(session: Session, repo: Repository, name: str) -> ProjectContext | None:
    """The files of `name` from the highest-priority source that has it; lower sources are hidden."""
    for sub in repo.subscriptions:
        project = session.scalar(select(Project).where(Project.source_id == sub.source_id, Project.name == name))
        if project is None:
            continue
        # Query rather than use `project.files`: a collection loaded earlier in this session misses new rows.
        rows = session.scalars(select(DistFile).where(DistFile.project_id == project.id))
        files = sorted(rows, key=lambda f: (_version_key(f.version), f.filename))
        versions = sorted({f.version for f in files}, key=_version_key)
        return ProjectContext(
            name=name,
            versions=versions,
            files=[_entry(name, f) for f in files],
        )
    return None


def _entry(project: str, f: DistFile) -> FileEntry:
    return FileEntry(
        filename=f.filename,
        url=file_url(project, f.sha256, f.filename),
        sha256=f.sha256,
        size=f.size,
        upload_time=f.uploaded_at,
        requires_python=f.requires_python,
        yanked=f.yanked,
        yanked_reason=f.yanked_reason,
        metadata_sha256=f.metadata_sha256,
        signed=f.signature_sha256 is not None,
    )


def _store(session: Session, repo: Repository, key: str, page: RenderedPage | None, serial: int) -> None:
    existing = session.get(SimplePage, (repo.id, key))
    if page is None:
        if existing is not None:
            session.delete(existing)
        return
    if existing is None:
        session.add(
            SimplePage(
                stale=False,
                repository_id=repo.id,
                project=key,
                html=page.html,
                json=page.json,
                etag=page.etag,
                serial=serial,
            )
        )
    else:
        existing.html, existing.json, existing.etag, existing.serial = page.html, page.json, page.etag, serial
        existing.stale = False


def rebuild_project(session: Session, repo: Repository, name: str, serial: int) -> None:
    ctx = project_context(session, repo, name)
    _store(session, repo, name, render_project(ctx) if ctx else None, serial)


def rebuild_root(session: Session, repo: Repository, serial: int) -> None:
    names: dict[str, str] = {}
    for sub in repo.subscriptions:
        rows = session.execute(select(Project.name, Project.display_name).where(Project.source_id == sub.source_id))
        for name, display in rows:
            names.setdefault(name, display)
    _store(session, repo, ROOT, render_root(sorted(names.items())), serial)


def rebuild_repository(session: Session, repo: Repository, serial: int) -> None:
    """Every page of a repository; after a subscription change."""
    session.execute(delete(SimplePage).where(SimplePage.repository_id == repo.id))
    session.flush()
    source_ids = [s.source_id for s in repo.subscriptions]
    names = set(session.scalars(select(Project.name).where(Project.source_id.in_(source_ids))))
    for name in sorted(names):
        rebuild_project(session, repo, name, serial)
    rebuild_root(session, repo, serial)


def repositories_serving(session: Session, source_id: int) -> list[Repository]:
    return list(session.scalars(select(Repository).join(Subscription).where(Subscription.source_id == source_id)))


def source_changed(session: Session, source_id: int, project: str, serial: int, new_project: bool) -> None:
    """Re-render `project` in every repository serving the source; a new name marks their roots stale."""
    repos = repositories_serving(session, source_id)
    for repo in repos:
        rebuild_project(session, repo, project, serial)
    if new_project and repos:
        session.execute(
            update(SimplePage)
            .where(SimplePage.project == ROOT, SimplePage.repository_id.in_([r.id for r in repos]))
            .values(stale=True)
        )


def render_stale_roots(session: Session, serial: int) -> list[int]:
    """Re-render root pages marked stale; returns the repository ids whose root changed."""
    ids = list(session.scalars(select(SimplePage.repository_id).where(SimplePage.project == ROOT, SimplePage.stale)))
    for repo_id in ids:
        repo = session.get(Repository, repo_id)
        if repo is not None:
            rebuild_root(session, repo, serial)
    return ids
