"""What the package pages show: the repositories a visitor may see, a repository's projects with their latest
version and summary, search over them, and one project's versions, files and metadata.

The same rules as the simple index decide what is served (the winning source of a name, curated allowlists,
deleted files), but blocked versions are listed with the rule's reason instead of being left out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from packyard.repository.browse import descriptions
from packyard.repository.browse.descriptions import MetadataSource, ProjectMetadata
from packyard.repository.errors import VersionNotFound
from packyard.repository.index import indexer
from packyard.repository.index.page_cache import MIRROR_TYPES
from packyard.repository.models import BlockRule, CuratedEntry, DistFile, Project, Repository, Source
from packyard.repository.names import normalize
from packyard.repository.policy.rules import Rules, matches, rules_for
from packyard.storage import BlobStore


@dataclass(frozen=True)
class RepositoryEntry:
    name: str
    description: str
    authenticated: bool
    projects: int


def visible_repositories(session: Session, signed_in: bool) -> list[RepositoryEntry]:
    """Public repositories for everyone; authenticated ones too for a signed-in user."""
    query = select(Repository).order_by(Repository.name)
    if not signed_in:
        query = query.where(Repository.authenticated.is_(False))
    return [
        RepositoryEntry(r.name, r.description, r.authenticated, len(indexer.root_names(session, _source_ids(r))))
        for r in session.scalars(query)
    ]


def _source_ids(repo: Repository) -> list[int]:
    return [sub.source_id for sub in repo.subscriptions]


# -- a repository's projects ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectEntry:
    name: str  # normalized
    display_name: str
    latest: str  # the version an unpinned install gets; "" when every version is yanked or blocked
    summary: str
    updated: datetime | None  # the newest served file's upload time


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _is_prerelease(version: str) -> bool:
    try:
        return Version(version).is_prerelease
    except InvalidVersion:
        return False


def latest_installable(versions: dict[str, bool]) -> str:
    """The version pip picks with no pin: the newest final release not yanked, else the newest pre-release.
    `versions` maps each served version to whether it can be installed (not yanked, not blocked)."""
    candidates = [v for v, ok in versions.items() if ok]
    finals = [v for v in candidates if not _is_prerelease(v)]
    pool = finals or candidates
    return max(pool, key=_version_key) if pool else ""


def _block_rules(session: Session, repo_id: int) -> dict[str, Rules]:
    rows = session.scalars(
        select(BlockRule)
        .where(or_(BlockRule.repository_id.is_(None), BlockRule.repository_id == repo_id))
        .order_by(BlockRule.id)
    )
    grouped: dict[str, list[BlockRule]] = defaultdict(list)
    for rule in rows:
        grouped[rule.project].append(rule)
    return {name: Rules(tuple(rules)) for name, rules in grouped.items()}


def _curated(session: Session, source_ids: list[int]) -> dict[tuple[int, str], str]:
    curated = [s for s in source_ids if indexer.source_type(session, s) == "curated-pypi"]
    if not curated:
        return {}
    rows = session.execute(
        select(CuratedEntry.source_id, CuratedEntry.project, CuratedEntry.specifier).where(
            CuratedEntry.source_id.in_(curated)
        )
    )
    return {(source_id, project): specifier for source_id, project, specifier in rows}


def project_entries(
    session: Session, store: BlobStore, repo_id: int, summaries: descriptions.Summaries
) -> list[ProjectEntry]:
    """Every project the repository serves, sorted by name."""
    source_ids = indexer.sources_of(session, repo_id)
    if not source_ids:
        return []
    winners = indexer.winning_sources(session, source_ids)
    curated = _curated(session, source_ids)
    rules = _block_rules(session, repo_id)
    rows = session.execute(
        select(
            Project.source_id,
            Project.name,
            DistFile.version,
            DistFile.yanked,
            DistFile.uploaded_at,
            DistFile.sha256,
            DistFile.filename,
            DistFile.packagetype,
            DistFile.metadata_sha256,
        )
        .join(Project, Project.id == DistFile.project_id)
        .where(DistFile.source_id.in_(source_ids), DistFile.deleted_at.is_(None))
    )
    files: dict[str, list] = defaultdict(list)
    for row in rows:
        if winners.get(row.name, (None,))[0] != row.source_id:
            continue
        allowed = curated.get((row.source_id, row.name), "")
        if allowed and not matches(allowed, row.version):
            continue
        files[row.name].append(row)
    latest: dict[str, tuple[str, datetime | None, MetadataSource | None]] = {}
    for name in winners:
        found = files.get(name, [])
        blocked = rules.get(name)
        installable: dict[str, bool] = {}
        for f in found:
            ok = not f.yanked and (blocked is None or blocked.blocked(f.version) is None)
            installable[f.version] = installable.get(f.version, False) or ok
        version = latest_installable(installable)
        of_latest = [f for f in found if f.version == version]
        source = descriptions.best_source(
            MetadataSource(f.sha256, f.filename, f.packagetype, f.metadata_sha256) for f in of_latest
        )
        updated = max((f.uploaded_at for f in found), default=None)
        latest[name] = (version, updated, source)
    sources = [source for _, _, source in latest.values() if source is not None]
    summary = summaries.lookup(session, store, sources)
    return [
        ProjectEntry(
            name=name,
            display_name=winners[name][1],
            latest=version,
            summary=summary.get(source.sha256, "") if source is not None else "",
            updated=updated,
        )
        for name, (version, updated, source) in sorted(latest.items())
    ]


def search(entries: list[ProjectEntry], query: str) -> list[ProjectEntry]:
    """Projects whose name or summary holds every word of `query`: the exact name first, then names that start
    with it, then names that hold every word, then summaries."""
    words = query.lower().split()
    if not words:
        return entries
    whole = normalize(query.strip())
    keys = [(w, normalize(w)) for w in words]

    def rank(entry: ProjectEntry) -> int | None:
        summary = entry.summary.lower()
        in_name = all(n in entry.name for _, n in keys)
        if not all(n in entry.name or w in summary for w, n in keys):
            return None
        if entry.name == whole:
            return 0
        if entry.name.startswith(whole):
            return 1
        return 2 if in_name else 3

    ranked = [(r, e.name, e) for e in entries if (r := rank(e)) is not None]
    return [e for _, _, e in sorted(ranked, key=lambda t: (t[0], t[1]))]


@dataclass(frozen=True)
class Page:
    items: list[ProjectEntry]
    number: int
    pages: int
    total: int


def paginate(entries: list[ProjectEntry], number: int, size: int) -> Page:
    pages = max(1, -(-len(entries) // size))
    start = (number - 1) * size
    return Page(entries[start : start + size], number, pages, len(entries))


# -- one project ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileDetail:
    filename: str
    packagetype: str
    python_version: str
    size: int
    sha256: str
    blake2_256: str
    md5: str
    uploaded_at: datetime
    requires_python: str
    yanked: bool
    yanked_reason: str
    signed: bool
    url: str  # from the server's root: /{repo}/latest/packages/{name}/{sha256}/{filename}

    @property
    def signature_url(self) -> str | None:
        return self.url + ".asc" if self.signed else None


@dataclass(frozen=True)
class VersionDetail:
    version: str
    files: list[FileDetail]
    blocked: str | None  # the block rule's reason, when policy keeps this version from installers

    @property
    def uploaded_at(self) -> datetime:
        return min(f.uploaded_at for f in self.files)

    @property
    def yanked(self) -> bool:
        return all(f.yanked for f in self.files)

    @property
    def yanked_reason(self) -> str:
        return next((f.yanked_reason for f in self.files if f.yanked and f.yanked_reason), "")

    @property
    def prerelease(self) -> bool:
        return _is_prerelease(self.version)


@dataclass(frozen=True)
class Dependency:
    requirement: str
    name: str  # normalized; "" when the requirement does not parse
    served: bool  # whether the repository serves it, so the page links its project page


@dataclass(frozen=True)
class ProjectDetail:
    name: str
    display_name: str
    source: str
    versions: list[VersionDetail]  # newest first
    latest: str
    shown: VersionDetail  # the version whose metadata the page shows
    metadata: ProjectMetadata | None  # None: not known yet (a mirrored file not downloaded)
    dependencies: list[Dependency]
    # When metadata is None: a mirrored wheel's `.metadata` digest and upstream URL, to fetch it from there.
    upstream_metadata: tuple[str, str] | None = None


def project_detail(
    session: Session, store: BlobStore, repo: str, repo_id: int, name: str, version: str | None = None
) -> ProjectDetail | None:
    """One project as the repository serves it, with the metadata of `version` (default: the latest); None when
    the repository does not serve the name. Raises VersionNotFound for a version it does not serve."""
    source_ids = indexer.sources_of(session, repo_id)
    serving = indexer.serving_source(session, source_ids, name)
    if serving is None:
        return None
    source_id, project_id, allowed = serving
    project = session.get(Project, project_id)
    assert project is not None
    rows = session.scalars(
        select(DistFile).where(DistFile.project_id == project_id, DistFile.deleted_at.is_(None))
    ).all()
    rows = [r for r in rows if matches(allowed, r.version)]
    if not rows:
        return None
    rules = rules_for(session, repo_id, name)
    by_version: dict[str, list[FileDetail]] = defaultdict(list)
    sources: dict[str, list[MetadataSource]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r.filename):
        by_version[r.version].append(_file_detail(r, repo, name))
        sources[r.version].append(MetadataSource(r.sha256, r.filename, r.packagetype, r.metadata_sha256))
    versions = []
    for v in sorted(by_version, key=_version_key, reverse=True):
        rule = rules.blocked(v)
        versions.append(VersionDetail(v, by_version[v], rule.reason if rule is not None else None))
    latest = latest_installable({v.version: not v.yanked and v.blocked is None for v in versions})
    wanted = version if version is not None else (latest or versions[0].version)
    shown = next((v for v in versions if v.version == wanted), None)
    if shown is None:
        raise VersionNotFound(f"Version `{wanted}` of `{project.name}` is not in repository `{repo}`.")
    source = descriptions.best_source(sources[shown.version])
    data = descriptions.read_metadata(session, store, source) if source is not None else None
    metadata = descriptions.parse(data) if data is not None else None
    mirrored = any(indexer.source_type(session, s) in MIRROR_TYPES for s in source_ids)
    dependencies = [
        _dependency(session, source_ids, text, mirrored) for text in (metadata.requires_dist if metadata else ())
    ]
    upstream = None
    if metadata is None:
        upstream = next(
            (
                (r.metadata_sha256, r.url + ".metadata")
                for r in rows
                if r.version == shown.version and r.url and r.metadata_sha256
            ),
            None,
        )
    source_name = _source_name(session, source_id)
    return ProjectDetail(
        name, project.display_name, source_name, versions, latest, shown, metadata, dependencies, upstream
    )


def _file_detail(r: DistFile, repo: str, name: str) -> FileDetail:
    return FileDetail(
        filename=r.filename,
        packagetype=r.packagetype,
        python_version=r.python_version,
        size=r.size,
        sha256=r.sha256,
        blake2_256=r.blake2_256,
        md5=r.md5,
        uploaded_at=r.uploaded_at,
        requires_python=r.requires_python or "",
        yanked=r.yanked,
        yanked_reason=r.yanked_reason,
        signed=r.signature_sha256 is not None,
        url=f"/{repo}/latest/packages/{name}/{r.sha256}/{r.filename}",
    )


def _dependency(session: Session, source_ids: list[int], text: str, mirrored: bool) -> Dependency:
    try:
        name = normalize(Requirement(text).name)
    except InvalidRequirement:
        return Dependency(text, "", False)
    # A mirror serves any name its upstream has: the project page fetches it on first visit.
    served = mirrored or indexer.serving_source(session, source_ids, name) is not None
    return Dependency(text, name, served)


def _source_name(session: Session, source_id: int) -> str:
    source = session.get(Source, source_id)
    return source.name if source is not None else ""
