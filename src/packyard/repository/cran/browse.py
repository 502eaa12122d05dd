"""What the package pages show of an R repository: its packages with their DESCRIPTION fields."""

from __future__ import annotations

from sqlalchemy.orm import Session

from packyard.repository.browse.catalog import ProjectEntry
from packyard.repository.cran import description, index
from packyard.repository.cran.index import RPackageEntry
from packyard.repository.index.page_cache import RepoInfo
from packyard.repository.names import normalize
from packyard.repository.services import R_TYPES

# The DESCRIPTION fields a package page shows, in this order (Title and Description head the page).
SHOWN_FIELDS = ("Version", "Depends", "Imports", "LinkingTo", "Suggests", "License", "Maintainer", "URL", "BugReports")


def is_r_repository(info: RepoInfo) -> bool:
    """A repository that serves `local-r` sources (subscriptions never mix R and Python)."""
    return any(s.type in R_TYPES for s in info.sources)


def project_entries(session: Session, repo_id: int) -> list[ProjectEntry]:
    """The listing: `name` normalized as for Python projects, so search and links work alike."""
    entries = []
    for name, entry in index.contrib(session, repo_id).items():
        files = ([entry.current] if entry.current else []) + entry.archived
        shown = entry.current or files[-1]
        title = description.one_line(shown.fields.get("Title", ""))
        newest = max(f.uploaded_at for f in files)
        entries.append(
            ProjectEntry(normalize(name), name, entry.current.version if entry.current else "", title, newest)
        )
    return sorted(entries, key=lambda e: e.name)


def package(session: Session, repo_id: int, name: str) -> RPackageEntry | None:
    """The package whose name normalizes to `name`'s (R names are case-sensitive; URLs are not)."""
    wanted = normalize(name)
    return next((e for n, e in index.contrib(session, repo_id).items() if normalize(n) == wanted), None)
