"""Sources, repositories, subscriptions and yanks: the writes that run from the CLI or the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from packyard.changelog.events import record
from packyard.db import utcnow
from packyard.repository.errors import Conflict, NotFound, RepositoryError
from packyard.repository.index import indexer
from packyard.repository.models import DistFile, Project, Repository, Source, Subscription
from packyard.repository.names import check_entity_name, normalize

SOURCE_TYPES = ("local-python", "pypi", "curated-pypi", "local-r")
LOCAL_TYPES = ("local-python", "local-r")  # sources that take uploads
R_TYPES = ("local-r",)  # served as CRAN-like repositories (repository/cran/), never beside Python sources
DEFAULT_SOURCE = "local-python-src"
DEFAULT_REPOSITORY = "pypi"
DEFAULT_MIRROR = "pypi"  # the source; PPM's built-in PyPI source has this name too


_SOURCE_BY_NAME = select(Source).where(Source.name == bindparam("name"))


def get_source(session: Session, name: str) -> Source:
    source = session.scalar(_SOURCE_BY_NAME, {"name": name})
    if source is None:
        known = ", ".join(f"`{n}`" for n in session.scalars(select(Source.name).order_by(Source.name)))
        raise NotFound(
            f"Source `{name}` does not exist. Known sources: {known or 'none'}. "
            f"Create it with `packyard source create --name {name}`."
        )
    return source


def get_repository(session: Session, name: str) -> Repository:
    repo = session.scalar(select(Repository).where(Repository.name == name))
    if repo is None:
        known = ", ".join(f"`{n}`" for n in session.scalars(select(Repository.name).order_by(Repository.name)))
        raise NotFound(f"Repository `{name}` does not exist. Known repositories: {known or 'none'}.")
    return repo


@dataclass(frozen=True)
class SourceSummary:
    """A source as the lists show it: what it holds and which repositories serve it, by priority."""

    name: str
    type: str
    upstream: str | None  # None: a mirror following `[mirror] upstream`, or a local source
    projects: int
    files: int
    repositories: list[tuple[str, int]]  # (repository, priority)
    created_at: datetime

    @property
    def mirrors(self) -> bool:
        return self.type not in LOCAL_TYPES


def list_sources(session: Session) -> list[SourceSummary]:
    projects = dict(session.execute(select(Project.source_id, func.count()).group_by(Project.source_id)).all())
    files = dict(session.execute(select(DistFile.source_id, func.count()).group_by(DistFile.source_id)).all())
    served: dict[int, list[tuple[str, int]]] = {}
    query = select(Subscription.source_id, Repository.name, Subscription.priority).join(
        Repository, Repository.id == Subscription.repository_id
    )
    for source_id, repo, priority in session.execute(query.order_by(Repository.name)):
        served.setdefault(source_id, []).append((repo, priority))
    return [
        SourceSummary(
            s.name, s.type, s.upstream, projects.get(s.id, 0), files.get(s.id, 0), served.get(s.id, []), s.created_at
        )
        for s in session.scalars(select(Source).order_by(Source.name))
    ]


def create_source(session: Session, name: str, type: str = "local-python", upstream: str | None = None) -> Source:
    check_entity_name("Source", name)
    if type not in SOURCE_TYPES:
        raise RepositoryError(f"Source type `{type}` is not supported; use one of: {', '.join(SOURCE_TYPES)}.")
    if upstream is not None:
        if type in LOCAL_TYPES:
            raise RepositoryError("Only `pypi` and `curated-pypi` sources have an upstream; drop `--upstream`.")
        if not upstream.startswith(("http://", "https://")):
            raise RepositoryError(
                f"Upstream {upstream!r} is not an http(s) URL; give a simple index such as `https://pypi.org/simple/`."
            )
    if session.scalar(select(Source).where(Source.name == name)):
        raise Conflict(f"Source `{name}` already exists.")
    source = Source(name=name, type=type, upstream=upstream)
    session.add(source)
    session.flush()
    record(session, "source-create", source_id=source.id, detail=type)
    return source


# The first path segments of Packyard's own URLs, which a repository's `/{name}/latest/...` must not shadow.
RESERVED_NAMES = frozenset(
    ("upload", "__api__", "__ping__", "static", "repos", "connect", "admin", "login", "logout", "content", "profile")
)


def create_repository(session: Session, name: str, description: str = "", authenticated: bool = False) -> Repository:
    check_entity_name("Repository", name)
    if name in RESERVED_NAMES:
        raise RepositoryError(f"Repository name `{name}` is reserved for Packyard's own URLs; pick another.")
    if session.scalar(select(Repository).where(Repository.name == name)):
        raise Conflict(f"Repository `{name}` already exists.")
    repo = Repository(name=name, description=description, authenticated=authenticated)
    session.add(repo)
    session.flush()
    serial = record(session, "repo-create", repository_id=repo.id)
    indexer.rebuild_repository(session, repo.id, serial)
    return repo


def set_authenticated(session: Session, repo_name: str, authenticated: bool) -> Repository:
    repo = get_repository(session, repo_name)
    repo.authenticated = authenticated
    record(session, "repo-edit", repository_id=repo.id, detail=f"authenticated={authenticated}")
    return repo


def set_reader_groups(session: Session, repo_name: str, groups: list[str]) -> Repository:
    """The groups whose members may read an authenticated repository through single sign-on (`/__api__/token`
    gives them `repos:read` on it); an empty list: none. The change-log event lets every node's caches follow."""
    names: list[str] = []
    for raw in groups:
        name = raw.strip()
        if not name:
            continue
        if any(ch in name for ch in "\n\r,") or len(name) > 200:
            raise RepositoryError(
                f"Group name {name!r} is not valid: a reader group is a provider group's name, without commas or "
                "line breaks, up to 200 characters; separate groups with commas, e.g. `--groups analysts,data-eng`."
            )
        if name not in names:
            names.append(name)
    repo = get_repository(session, repo_name)
    repo.reader_groups = "\n".join(names)
    record(session, "repo-edit", repository_id=repo.id, detail="reader_groups=" + ",".join(names))
    return repo


def subscribe(session: Session, repo_name: str, source_name: str, priority: int | None = None) -> Subscription:
    """Serve `source` from `repo`; without a priority it goes below the sources already there."""
    repo = get_repository(session, repo_name)
    source = get_source(session, source_name)
    if any(s.source_id == source.id for s in repo.subscriptions):
        raise Conflict(f"Repository `{repo_name}` already serves source `{source_name}`.")
    other = next((s.source for s in repo.subscriptions if (s.source.type in R_TYPES) != (source.type in R_TYPES)), None)
    if other is not None:
        # One URL layout per repository: R reads `src/contrib/`, Python installers read `simple/`.
        raise RepositoryError(
            f"Repository `{repo_name}` serves `{other.type}` source `{other.name}`, and `{source_name}` is a "
            f"`{source.type}` source; R and Python packages are served by separate repositories: create another "
            f"with `packyard repo create --name <name>` and subscribe it to `{source_name}`."
        )
    if priority is None:
        priority = max((s.priority for s in repo.subscriptions), default=0) + 1
    sub = Subscription(repository_id=repo.id, source_id=source.id, priority=priority, source=source)
    repo.subscriptions.append(sub)
    repo.subscriptions.sort(key=lambda s: s.priority)
    session.flush()
    serial = record(session, "subscribe", repository_id=repo.id, source_id=source.id, detail=str(priority))
    indexer.rebuild_repository(session, repo.id, serial)
    return sub


def ensure_defaults(session: Session) -> bool:
    """On first start, create `local-python-src` and the `pypi` repository serving it."""
    if session.scalar(select(func.count()).select_from(Source)) or session.scalar(
        select(func.count()).select_from(Repository)
    ):
        return False
    create_source(session, DEFAULT_SOURCE)
    create_repository(session, DEFAULT_REPOSITORY, description="Python packages")
    subscribe(session, DEFAULT_REPOSITORY, DEFAULT_SOURCE)
    return True


def ensure_mirror(session: Session) -> bool:
    """Once an upstream is configured, the `pypi` repository serves the mirror source below its local ones."""
    if session.scalar(select(Source).where(Source.name == DEFAULT_MIRROR)) is not None:
        return False
    repo = session.scalar(select(Repository).where(Repository.name == DEFAULT_REPOSITORY))
    create_source(session, DEFAULT_MIRROR, "pypi")  # upstream None: follows `[mirror] upstream`
    if repo is not None:
        subscribe(session, DEFAULT_REPOSITORY, DEFAULT_MIRROR)
    return True


def _release_files(
    session: Session, source: Source, project: str, version: str, filename: str | None
) -> list[DistFile]:
    """The live files of a release (or the one named), or NotFound."""
    query = (
        select(DistFile)
        .join(Project)
        .where(
            Project.source_id == source.id,
            # R package names are stored as written (case and dots kept), Python names normalized.
            Project.name.in_({normalize(project), project}),
            DistFile.version == version,
            DistFile.deleted_at.is_(None),
        )
    )
    if filename:
        query = query.where(DistFile.filename == filename)
    files = list(session.scalars(query))
    if not files:
        what = f"file `{filename}` of " if filename else ""
        raise NotFound(
            f"No {what}`{project}` version `{version}` in source `{source.name}`; "
            "check the name and version against the simple index."
        )
    return files


def set_yanked(
    session: Session,
    source_name: str,
    project: str,
    version: str,
    filename: str | None,
    yanked: bool,
    reason: str = "",
) -> list[DistFile]:
    """Yank or unyank every file of a release, or one file of it."""
    source = get_source(session, source_name)
    name = normalize(project)
    files = _release_files(session, source, project, version, filename)
    for f in files:
        f.yanked = yanked
        f.yanked_reason = reason if yanked else ""
        kind = "yank" if yanked else "unyank"
        serial = record(session, kind, source_id=source.id, project=name, filename=f.filename, detail=reason)
    indexer.source_changed(session, source.id, name, serial, new_project=False)
    return files


def delete_files(
    session: Session, source_name: str, project: str, version: str, filename: str | None
) -> list[DistFile]:
    """Take a release (or one file of it) out of `latest`; snapshots dated before today still show it."""
    source = get_source(session, source_name)
    name = normalize(project)
    files = _release_files(session, source, project, version, filename)
    now = utcnow()
    for f in files:
        f.deleted_at = now
        serial = record(session, "delete", at=now, source_id=source.id, project=name, filename=f.filename)
    indexer.source_changed(session, source.id, name, serial, new_project=False)
    return files


def rebuild(session: Session, repo_name: str) -> int:
    """Re-render every page of a repository; returns how many projects it has."""
    repo = get_repository(session, repo_name)
    serial = record(session, "repo-rebuild", repository_id=repo.id)
    indexer.rebuild_repository(session, repo.id, serial)
    return len(indexer.root_names(session, indexer.sources_of(session, repo.id)))


def find_file(session: Session, source_name: str, filename: str) -> DistFile:
    source = get_source(session, source_name)
    found = session.scalar(select(DistFile).where(DistFile.source_id == source.id, DistFile.filename == filename))
    if found is None:
        raise NotFound(f"No file `{filename}` in source `{source_name}`.")
    return found
