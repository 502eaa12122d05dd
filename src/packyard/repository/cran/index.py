"""What a CRAN-like repository serves under `src/contrib/`, as of now or of a snapshot's cutoff: each package's
newest version (in `PACKAGES`) and its older ones (under `Archive/`). Read from the rows on request."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.repository.cran import description
from packyard.repository.cran.service import PACKAGETYPE
from packyard.repository.index.indexer import sources_of
from packyard.repository.models import CoreMetadata, DistFile, Project

# `tools::write_PACKAGES`' default fields, in its order; MD5sum is the tarball's, which R checks.
PACKAGES_FIELDS = (
    "Package",
    "Version",
    "Priority",
    "Depends",
    "Imports",
    "LinkingTo",
    "Suggests",
    "Enhances",
    "License",
    "License_is_FOSS",
    "License_restricts_use",
    "OS_type",
    "Archs",
    "MD5sum",
    "NeedsCompilation",
)


@dataclass(frozen=True)
class RFile:
    name: str
    version: str
    filename: str
    sha256: str
    md5: str
    size: int
    yanked: bool
    fields: dict[str, str]
    uploaded_at: datetime


@dataclass
class RPackageEntry:
    """One package as the repository serves it: `current` in PACKAGES, `archived` under Archive/."""

    name: str
    current: RFile | None = None
    archived: list[RFile] = field(default_factory=list)


def contrib(session: Session, repo_id: int, cutoff: datetime | None = None) -> dict[str, RPackageEntry]:
    """Each package name -> its entry; a name in several sources is served from the highest-priority one."""
    source_ids = sources_of(session, repo_id)
    if not source_ids:
        return {}
    query = (
        select(DistFile, Project.name, CoreMetadata.data)
        .join(Project, Project.id == DistFile.project_id)
        .join(CoreMetadata, CoreMetadata.sha256 == DistFile.metadata_sha256)
        .where(DistFile.source_id.in_(source_ids), DistFile.packagetype == PACKAGETYPE)
    )
    if cutoff is None:
        query = query.where(DistFile.deleted_at.is_(None))
    else:
        query = query.where(
            DistFile.uploaded_at < cutoff, DistFile.deleted_at.is_(None) | (DistFile.deleted_at >= cutoff)
        )
    rank = {s: i for i, s in enumerate(source_ids)}
    by_name: dict[str, tuple[int, list[RFile]]] = {}
    for row, name, data in session.execute(query):
        fields = description.parse(data, f"{name}/DESCRIPTION")
        rfile = RFile(
            name, row.version, row.filename, row.sha256, row.md5, row.size, row.yanked, fields, row.uploaded_at
        )
        source_rank = rank[row.source_id]
        held = by_name.get(name)
        if held is None or source_rank < held[0]:
            by_name[name] = (source_rank, [rfile])
        elif source_rank == held[0]:
            held[1].append(rfile)
    entries: dict[str, RPackageEntry] = {}
    for name, (_, files) in sorted(by_name.items()):
        files.sort(key=lambda f: description.version_key(f.version))
        entry = RPackageEntry(name)
        live = [f for f in files if not f.yanked]
        entry.current = live[-1] if live else None
        entry.archived = [f for f in files if f is not entry.current]
        entries[name] = entry
    return entries


def packages_text(entries: dict[str, RPackageEntry]) -> bytes:
    """`src/contrib/PACKAGES`: one DCF record per current package, separated by blank lines."""
    records = []
    for entry in entries.values():
        if entry.current is None:
            continue
        values = dict(entry.current.fields)
        values["MD5sum"] = entry.current.md5
        lines = [f"{key}: {description.one_line(values[key])}" for key in PACKAGES_FIELDS if values.get(key)]
        records.append("\n".join(lines) + "\n")
    return "\n".join(records).encode("utf-8")


def packages_gz(text: bytes) -> bytes:
    """PACKAGES.gz with no timestamp, so the same index always has the same bytes (and ETag)."""
    return gzip.compress(text, mtime=0)
