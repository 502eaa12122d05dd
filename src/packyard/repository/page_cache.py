"""Pre-rendered simple pages held in memory, kept current by following the change log."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import func, select

from packyard.db import Database
from packyard.repository.models import Event, Repository, SimplePage, Source

MAX_PAGES = 200_000


@dataclass(frozen=True)
class RepoInfo:
    id: int
    name: str
    authenticated: bool


@dataclass(frozen=True)
class CachedPage:
    html: bytes
    json: bytes
    html_etag: bytes
    json_etag: bytes
    html_length: bytes
    json_length: bytes

    @classmethod
    def of(cls, page: SimplePage) -> CachedPage:
        return cls(
            page.html,
            page.json,
            f'"{page.etag}-h"'.encode(),
            f'"{page.etag}-j"'.encode(),
            str(len(page.html)).encode(),
            str(len(page.json)).encode(),
        )


MISSING = object()  # a cached "no such page", so repeated 404s cost no query


class PageCache:
    """Reads are dictionary lookups; `sync()` applies new change-log events (writes in this process call it
    at once, a background task calls it for writes made by other processes or the CLI)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.repos: dict[str, RepoInfo] = {}
        self.sources: frozenset[str] = frozenset()
        # project -> repository id -> page: one upload evicts one project's entry and the root's.
        self._pages: dict[str, dict[int, CachedPage | object]] = {}
        self._count = 0
        self._serial = 0
        self._lock = threading.Lock()
        self.reload()

    @property
    def serial(self) -> int:
        return self._serial

    def reload(self) -> None:
        with self.db.session() as session:
            serial = session.scalar(select(func.max(Event.id))) or 0
            repos = {r.name: RepoInfo(r.id, r.name, r.authenticated) for r in session.scalars(select(Repository))}
            sources = frozenset(session.scalars(select(Source.name)))
        self.repos = repos
        self.sources = sources
        self._pages = {}
        self._count = 0
        self._serial = serial

    def get(self, repo_id: int, project: str) -> CachedPage | object | None:
        """A page, MISSING, or None when not cached (then call `load`)."""
        by_repo = self._pages.get(project)
        return by_repo.get(repo_id) if by_repo is not None else None

    def load(self, repo_id: int, project: str) -> CachedPage | object:
        with self.db.session() as session:
            row = session.get(SimplePage, (repo_id, project))
            page: CachedPage | object = CachedPage.of(row) if row is not None else MISSING
        if self._count >= MAX_PAGES:
            self._pages.clear()
            self._count = 0
        self._pages.setdefault(project, {})[repo_id] = page
        self._count += 1
        return page

    def sync(self) -> list[Event]:
        """Apply change-log events newer than the last seen; returns them for other caches to act on."""
        with self._lock:
            with self.db.session() as session:
                events = list(session.scalars(select(Event).where(Event.id > self._serial).order_by(Event.id)))
            if not events:
                return []
            structural = False
            for event in events:
                if event.kind in ("upload", "yank", "unyank", "root-render"):
                    self._pages.pop(event.project, None)
                    self._pages.pop("", None)
                elif not event.kind.startswith("token-"):
                    structural = True
            if structural:
                self.reload()
            else:
                self._serial = events[-1].id
            return events
