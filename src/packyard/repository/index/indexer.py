"""Render a repository's simple pages when its sources change, so reads are a lookup.

This runs inside every upload's transaction, so it reads columns with statements built once with bind
parameters: on SQLite, building a statement costs more than running it, and the upload rate depends on it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from packaging.version import InvalidVersion, Version
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from packyard.changelog.events import Event
from packyard.db import table_of
from packyard.repository.index.pages import (
    FileEntry,
    ProjectContext,
    RenderedPage,
    file_url,
    render_project,
    render_root,
)
from packyard.repository.models import (
    CuratedEntry,
    DistFile,
    Project,
    Repository,
    SimplePage,
    Source,
    Subscription,
)
from packyard.repository.policy.rules import curated_specifier, matches, rules_for

ROOT = ""

_PAGES = table_of(SimplePage)
_SUBS = table_of(Subscription)
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
_FILE_COLUMNS = (
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
    DistFile.deleted_at,
)
_FILES = select(*_FILE_COLUMNS).where(DistFile.project_id == bindparam("project_id"), DistFile.deleted_at.is_(None))
_FILES_EVER = select(*_FILE_COLUMNS).where(
    DistFile.project_id == bindparam("project_id"), DistFile.uploaded_at < bindparam("cutoff")
)
_YANK_HISTORY = (
    select(Event.filename, Event.kind, Event.detail)
    .where(
        Event.source_id == bindparam("source_id"),
        Event.project == bindparam("name"),
        Event.kind.in_(("yank", "unyank")),
        Event.at < bindparam("cutoff"),
    )
    .order_by(Event.at, Event.id)
)
_SOURCE_TYPE = select(Source.type).where(Source.id == bindparam("source_id"))
_CURATED_NAMES = select(CuratedEntry.project).where(CuratedEntry.source_id == bindparam("source_id"))
_NAMES_AT = select(Project.source_id, Project.name, Project.display_name).where(
    Project.source_id.in_(bindparam("source_ids", expanding=True)),
    Project.id.in_(
        select(DistFile.project_id).where(
            DistFile.uploaded_at < bindparam("cutoff"),
            (DistFile.deleted_at.is_(None)) | (DistFile.deleted_at >= bindparam("cutoff")),
        )
    ),
)
_PAGE_WHERE = (_PAGES.c.repository_id == bindparam("repo_id"), _PAGES.c.project == bindparam("key"))
_PAGE_VALUES: dict[str, Any] = {name: bindparam(name) for name in ("html", "json", "etag", "serial")}
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
# Through the primary key: `project = ''` alone scans every page, and SQLite reads each row's html and json
# to reach `stale` (tens of MB at 5,000 projects), twice a second while uploads mark roots stale.
_STALE_ROOTS = select(_PAGES.c.repository_id).where(
    _PAGES.c.repository_id.in_(select(table_of(Repository).c.id)), _PAGES.c.project == ROOT, _PAGES.c.stale
)
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


# A source's type never changes, so every process may keep what it has read.
_source_types: dict[int, str] = {}


def source_type(session: Session, source_id: int) -> str:
    kind = _source_types.get(source_id)
    if kind is None:
        kind = _source_types[source_id] = session.scalar(_SOURCE_TYPE, {"source_id": source_id}) or ""
    return kind


def serving_source(session: Session, source_ids: list[int], name: str) -> tuple[int, int, str] | None:
    """(source id, project id, curated specifier) of the highest-priority source that has `name`; the name is
    hidden in every lower source. A curated source has only the names on its allowlist."""
    params = {"name": name, "source_ids": source_ids}
    found = {source_id: project_id for source_id, project_id in session.execute(_PROJECT_IDS, params)}
    for source_id in source_ids:
        if source_id not in found:
            continue
        allowed = ""
        if source_type(session, source_id) == "curated-pypi":
            specifier = curated_specifier(session, source_id, name)
            if specifier is None:
                continue
            allowed = specifier
        return source_id, found[source_id], allowed
    return None


def project_context(
    session: Session, repo_id: int, source_ids: list[int], name: str, cutoff: datetime | None = None
) -> ProjectContext | None:
    """The files of `name` that a repository serves, as of `cutoff` (None: now), after policy."""
    serving = serving_source(session, source_ids, name)
    if serving is None:
        return None
    source_id, project_id, allowed = serving
    if cutoff is None:
        rows = list(session.execute(_FILES, {"project_id": project_id}))
        yanks = {r.filename: (r.yanked, r.yanked_reason) for r in rows}
    else:
        rows = [
            r
            for r in session.execute(_FILES_EVER, {"project_id": project_id, "cutoff": cutoff})
            if r.deleted_at is None or r.deleted_at >= cutoff
        ]
        yanks = {r.filename: (False, "") for r in rows}
        params = {"source_id": source_id, "name": name, "cutoff": cutoff}
        for filename, kind, reason in session.execute(_YANK_HISTORY, params):
            yanks[filename] = (kind == "yank", reason if kind == "yank" else "")
    rules = rules_for(session, repo_id, name)
    if allowed or rules.rules:
        rows = [r for r in rows if matches(allowed, r.version) and rules.blocked(r.version) is None]
    rows.sort(key=lambda r: (_version_key(r.version), r.filename))
    files = [
        FileEntry(
            filename=r.filename,
            url=file_url(name, r.sha256, r.filename),
            sha256=r.sha256,
            size=r.size,
            upload_time=r.uploaded_at,
            requires_python=r.requires_python,
            yanked=yanks.get(r.filename, (False, ""))[0],
            yanked_reason=yanks.get(r.filename, (False, ""))[1],
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
    ctx = project_context(session, repo_id, source_ids, name)
    _store(session, repo_id, name, render_project(ctx) if ctx else None, serial)


def winning_sources(
    session: Session, source_ids: list[int], cutoff: datetime | None = None
) -> dict[str, tuple[int, str]]:
    """Each normalized name a repository serves -> (the source that wins it, its display name there)."""
    rank = {s: i for i, s in enumerate(source_ids)}
    curated = {
        s: set(session.scalars(_CURATED_NAMES, {"source_id": s}))
        for s in source_ids
        if source_type(session, s) == "curated-pypi"
    }
    names: dict[str, tuple[int, int, str]] = {}
    if cutoff is None:
        rows = session.execute(_NAMES, {"source_ids": source_ids})
    else:
        rows = session.execute(_NAMES_AT, {"source_ids": source_ids, "cutoff": cutoff})
    for source_id, name, display in rows:
        if source_id in curated and name not in curated[source_id]:
            continue
        if name not in names or rank[source_id] < names[name][0]:
            names[name] = (rank[source_id], source_id, display)
    return {name: (source_id, display) for name, (_, source_id, display) in names.items()}


def root_names(session: Session, source_ids: list[int], cutoff: datetime | None = None) -> list[tuple[str, str]]:
    """(normalized, display) names a repository serves, sorted; display names from the winning source."""
    return sorted((n, d) for n, (_, d) in winning_sources(session, source_ids, cutoff).items())


def rebuild_root(session: Session, repo_id: int, source_ids: list[int], serial: int) -> None:
    _store(session, repo_id, ROOT, render_root(root_names(session, source_ids)), serial)


def render_at(session: Session, repo_id: int, name: str, cutoff: datetime) -> RenderedPage | None:
    """A page of a dated snapshot, rendered when first asked for: a view of the history, not a copy."""
    source_ids = sources_of(session, repo_id)
    if name == ROOT:
        return render_root(root_names(session, source_ids, cutoff))
    ctx = project_context(session, repo_id, source_ids, name, cutoff)
    return render_project(ctx) if ctx is not None and ctx.files else None


def rebuild_everywhere(session: Session, name: str, serial: int, repo_id: int | None = None) -> None:
    """Re-render `name` in one repository or in all (after a policy change)."""
    repo_ids = [repo_id] if repo_id is not None else list(session.scalars(select(_SUBS.c.repository_id).distinct()))
    for rid in repo_ids:
        rebuild_project(session, rid, sources_of(session, rid), name, serial)


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


def stale_roots(session: Session) -> list[int]:
    """The repository ids whose root page new projects marked stale."""
    return list(session.scalars(_STALE_ROOTS))


def render_stale_roots(session: Session, serial: int) -> list[int]:
    """Re-render root pages marked stale; returns the repository ids whose root changed."""
    ids = stale_roots(session)
    for repo_id in ids:
        rebuild_root(session, repo_id, sources_of(session, repo_id), serial)
    return ids
