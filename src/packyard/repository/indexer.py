"""Render a repository's simple pages when its sources change, so reads are a lookup.

This runs inside every upload's transaction, so it reads columns with statements built once with bind
parameters: on SQLite, building a statement costs more than running it, and the upload rate depends on it.
"""

from __future__ import annotations

from collections import defaultdict

from packaging.version import InvalidVersion, Version
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from packyard.repository.models import DistFile, Project, SimplePage, Subscription
from packyard.repository.pages import FileEntry, ProjectContext, RenderedPage, file_url, render_project, render_root

ROOT = ""

_PAGES = SimplePage.__table__
_SUBS = Subscription.__table__
_SOURCES_OF = select(_SUBS.c.source_id).where(_SUBS.c.repository_id == bindparam("repo_id")).order_by(_SUBS.c.priority)
_SERVING = (
    select(_SUBS.c.repository_id, _SUBS.c.source_id)
    .where(_SUBS.c.repository_id.in_(select(_SUBS.c.repository_id).where(_SUBS.c.source_id == bindparam("source_id"))))
    .order_by(_SUBS.c.repository_id, _SUBS.c.priority)
)
_PROJECT_IDS = select(Project.source_id, Project.id).where(
    Project.name == bindparam("name"), Project.source_id.in_(bindparam("source_ids", expanding=True))
)
_NAMES = select(Project.source_id, Project.name, Project.display_name).where(
    Project.source_id.in_(bindparam("source_ids", expanding=True))
)
_FILES = select(
    DistFile.filename,
    DistFile.version,
    DistFile.sha256,
    DistFile.size,
    DistFile.uploaded_at,
    DistFile.requires_python,
    DistFile.yanked,
    DistFile.yanked_reason,
    DistFile.metadata_sha256,
    DistFile.signature_sha256,
).where(DistFile.project_id == bindparam("project_id"))
_PAGE_WHERE = (_PAGES.c.repository_id == bindparam("repo_id"), _PAGES.c.project == bindparam("key"))
_PAGE_VALUES = {name: bindparam(name) for name in ("html", "json", "etag", "serial")}
_UPDATE_PAGE = _PAGES.update().where(*_PAGE_WHERE).values(**_PAGE_VALUES, stale=False)
_INSERT_PAGE = _PAGES.insert().values(
    repository_id=bindparam("repo_id"), project=bindparam("key"), **_PAGE_VALUES, stale=False
)
_DELETE_PAGE = _PAGES.delete().where(*_PAGE_WHERE)
_DELETE_REPOSITORY_PAGES = _PAGES.delete().where(_PAGES.c.repository_id == bindparam("repo_id"))
_MARK_ROOTS_STALE = (
    _PAGES.update()
    .where(_PAGES.c.project == ROOT, _PAGES.c.repository_id.in_(bindparam("repo_ids", expanding=True)))
    .values(stale=True)
)
_STALE_ROOTS = select(_PAGES.c.repository_id).where(_PAGES.c.project == ROOT, _PAGES.c.stale)
# Two uploads to one project under READ COMMITTED would each render the page without the other's file, and
# the later write would win: renders of one project take turns (released at commit). SQLite's single
# writer already serializes them.
_PG_PROJECT_LOCK = text("SELECT pg_advisory_xact_lock(1, hashtext(:project))")


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def sources_of(session: Session, repo_id: int) -> list[int]:
    """The source ids a repository serves, highest priority first."""
    return list(session.scalars(_SOURCES_OF, {"repo_id": repo_id}))


def project_context(session: Session, source_ids: list[int], name: str) -> ProjectContext | None:
    """The files of `name` from the highest-priority source that has it; lower sources are hidden."""
    params = {"name": name, "source_ids": source_ids}
    found = {source_id: project_id for source_id, project_id in session.execute(_PROJECT_IDS, params)}
    project_id = next((found[s] for s in source_ids if s in found), None)
    if project_id is None:
        return None
    rows = session.execute(_FILES, {"project_id": project_id}).all()
    rows.sort(key=lambda r: (_version_key(r.version), r.filename))
    files = [
        FileEntry(
            filename=r.filename,
            url=file_url(name, r.sha256, r.filename),
            sha256=r.sha256,
            size=r.size,
            upload_time=r.uploaded_at,
            requires_python=r.requires_python,
            yanked=r.yanked,
            yanked_reason=r.yanked_reason,
            metadata_sha256=r.metadata_sha256,
            signed=r.signature_sha256 is not None,
        )
        for r in rows
    ]
    versions = sorted({r.version for r in rows}, key=_version_key)
    return ProjectContext(name=name, versions=versions, files=files)


def _store(session: Session, repo_id: int, key: str, page: RenderedPage | None, serial: int) -> None:
    if page is None:
        session.execute(_DELETE_PAGE, {"repo_id": repo_id, "key": key})
        return
    params = {"repo_id": repo_id, "key": key, "html": page.html, "json": page.json, "etag": page.etag, "serial": serial}
    if session.execute(_UPDATE_PAGE, params).rowcount == 0:  # type: ignore[attr-defined]
        session.execute(_INSERT_PAGE, params)


def rebuild_project(session: Session, repo_id: int, source_ids: list[int], name: str, serial: int) -> None:
    ctx = project_context(session, source_ids, name)
    _store(session, repo_id, name, render_project(ctx) if ctx else None, serial)


def rebuild_root(session: Session, repo_id: int, source_ids: list[int], serial: int) -> None:
    rank = {s: i for i, s in enumerate(source_ids)}
    names: dict[str, tuple[int, str]] = {}
    for source_id, name, display in session.execute(_NAMES, {"source_ids": source_ids}):
        if name not in names or rank[source_id] < names[name][0]:
            names[name] = (rank[source_id], display)
    _store(session, repo_id, ROOT, render_root(sorted((n, d) for n, (_, d) in names.items())), serial)


def rebuild_repository(session: Session, repo_id: int, serial: int) -> None:
    """Every page of a repository; after a subscription change."""
    source_ids = sources_of(session, repo_id)
    session.execute(_DELETE_REPOSITORY_PAGES, {"repo_id": repo_id})
    names = {name for _, name, _ in session.execute(_NAMES, {"source_ids": source_ids})}
    for name in sorted(names):
        rebuild_project(session, repo_id, source_ids, name, serial)
    rebuild_root(session, repo_id, source_ids, serial)


def repositories_serving(session: Session, source_id: int) -> dict[int, list[int]]:
    """Each repository serving the source, with all the sources it serves in priority order."""
    repos: dict[int, list[int]] = defaultdict(list)
    for repo_id, sid in session.execute(_SERVING, {"source_id": source_id}):
        repos[repo_id].append(sid)
    return repos


def source_changed(session: Session, source_id: int, project: str, serial: int, new_project: bool) -> None:
    """Re-render `project` in every repository serving the source; a new name marks their roots stale."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_PG_PROJECT_LOCK, {"project": project})
    repos = repositories_serving(session, source_id)
    for repo_id, source_ids in repos.items():
        rebuild_project(session, repo_id, source_ids, project, serial)
    if new_project and repos:
        session.execute(_MARK_ROOTS_STALE, {"repo_ids": list(repos)})


def render_stale_roots(session: Session, serial: int) -> list[int]:
    """Re-render root pages marked stale; returns the repository ids whose root changed."""
    ids = list(session.scalars(_STALE_ROOTS))
    for repo_id in ids:
        rebuild_root(session, repo_id, sources_of(session, repo_id), serial)
    return ids
