"""Pre-rendered simple pages held in memory, kept current by following the change log."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_start

from sqlalchemy import Row, func, select

from packyard import metrics
from packyard.changelog.events import Event
from packyard.changelog.follower import Follower
from packyard.db import Database
from packyard.repository.index import indexer
from packyard.repository.models import Repository, SimplePage, Source

MAX_PAGES = 200_000
PageKey = int | tuple[int, str]


MIRROR_TYPES = ("pypi", "curated-pypi")


@dataclass(frozen=True)
class SourceInfo:
    id: int
    name: str
    type: str
    upstream: str | None

    @property
    def is_mirror(self) -> bool:
        return self.type in MIRROR_TYPES


@dataclass(frozen=True)
class RepoInfo:
    id: int
    name: str
    authenticated: bool
    sources: tuple[SourceInfo, ...] = ()  # highest priority first

    @property
    def mirrored(self) -> bool:
        return any(s.is_mirror for s in self.sources)


@dataclass(frozen=True)
class CachedPage:
    html: bytes
    json: bytes
    html_etag: bytes
    json_etag: bytes
    html_length: bytes
    json_length: bytes

    @classmethod
    def of(cls, page: SimplePage | Row[int, str, bytes, bytes, str]) -> CachedPage:
        return cls(
            page.html,
            page.json,
            f'"{page.etag}-h"'.encode(),
            f'"{page.etag}-j"'.encode(),
            str(len(page.html)).encode(),
            str(len(page.json)).encode(),
        )


# Events that change one project's pages (and perhaps the root); anything else not about tokens reloads all.
# `shadow` (an upload hides a mirror's upstream versions) changes no page, but evicting one project is cheap.
PAGE_EVENTS = frozenset({"upload", "yank", "unyank", "root-render", "mirror", "delete", "policy", "curate", "shadow"})
# Events of other domains (tokens, publishing): no page depends on them, so they do not reload the cache.
OTHER_DOMAINS = ("token-", "content-", "user-", "key-", "env-")
MISSING = object()  # a cached "no such page", so repeated 404s cost no query


class PageCache:
    """Reads are dictionary lookups; `sync()` applies new change-log events (writes in this process call it
    at once, a background task calls it for writes made by other processes or the CLI)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.repos: dict[str, RepoInfo] = {}
        self.sources: frozenset[str] = frozenset()
        self.source_info: dict[str, SourceInfo] = {}
        # project -> repository id (or (id, date) for a snapshot) -> page: one upload evicts one project's
        # entry and the root's, dated pages included.
        self._pages: dict[str, dict[PageKey, CachedPage | object]] = {}
        self._count = 0
        self._serial = 0
        # Bumped on every eviction, under the lock: a page read from the database before an eviction must
        # not be cached after it, or a reader could pin a stale page.
        self._epoch = 0
        self._lock = threading.Lock()
        self._follower = Follower()
        self.reload()

    @property
    def serial(self) -> int:
        return self._serial

    def reload(self) -> None:
        with self.db.session() as session:
            serial = session.scalar(select(func.max(Event.id))) or 0
            by_id = {s.id: SourceInfo(s.id, s.name, s.type, s.upstream) for s in session.scalars(select(Source))}
            repos = {
                r.name: RepoInfo(r.id, r.name, r.authenticated, tuple(by_id[sub.source_id] for sub in r.subscriptions))
                for r in session.scalars(select(Repository))
            }
        self.repos = repos
        self.sources = frozenset(s.name for s in by_id.values())
        self.source_info = {s.name: s for s in by_id.values()}
        self._pages = {}
        self._count = 0
        self._epoch += 1
        self._serial = serial

    def get(self, repo_id: PageKey, project: str) -> CachedPage | object | None:
        """A page, MISSING, or None when not cached (then call `load`)."""
        by_repo = self._pages.get(project)
        page = by_repo.get(repo_id) if by_repo is not None else None
        (metrics.PAGE_MISS if page is None else metrics.PAGE_HIT).value += 1
        return page

    def load(self, repo_id: int, project: str) -> CachedPage | object:
        epoch = self._epoch
        with self.db.session() as session:
            row = session.get(SimplePage, (repo_id, project))
            page: CachedPage | object = CachedPage.of(row) if row is not None else MISSING
        with self._lock:
            if epoch == self._epoch:
                self._put(repo_id, project, page)
        return page

    def load_dated(self, repo_id: int, day: date, project: str) -> CachedPage | object:
        """A page of the snapshot at the end of `day` (UTC), rendered from the history on first request."""
        epoch = self._epoch
        cutoff = datetime.combine(day + timedelta(days=1), day_start.min, tzinfo=UTC)
        with self.db.session() as session:
            rendered = indexer.render_at(session, repo_id, project, cutoff)
        page: CachedPage | object = MISSING
        if rendered is not None:
            page = CachedPage.of(SimplePage(html=rendered.html, json=rendered.json, etag=rendered.etag))
        with self._lock:
            if epoch == self._epoch:
                self._put((repo_id, day.isoformat()), project, page)
        return page

    def preload(self, batch: int = 2000) -> int:
        """Fill the cache from the database, so a restarted server answers from memory at once; stops early
        if a write arrives (the rest then loads on demand). Returns how many pages it cached."""
        cached = 0
        epoch = self._epoch
        with self.db.session() as session:
            rows = session.execute(
                select(
                    SimplePage.repository_id, SimplePage.project, SimplePage.html, SimplePage.json, SimplePage.etag
                ).execution_options(yield_per=batch)
            )
            for chunk in rows.partitions():
                pages = [(r.repository_id, r.project, CachedPage.of(r)) for r in chunk]
                with self._lock:
                    if epoch != self._epoch or self._count + len(pages) > MAX_PAGES:
                        return cached
                    for repo_id, project, page in pages:
                        if self.get(repo_id, project) is None:
                            self._put(repo_id, project, page)
                            cached += 1
        return cached

    def _put(self, repo_id: PageKey, project: str, page: CachedPage | object) -> None:
        if self._count >= MAX_PAGES:
            self._pages.clear()
            self._count = 0
        self._pages.setdefault(project, {})[repo_id] = page
        self._count += 1

    def applied(self, serial: int, kind: str, project: str) -> bool:
        """Apply a page event this process has just committed, without reading the change log, when it is the
        very next one (what `sync` would do with it); False when other events may come first: call `sync`."""
        with self._lock:
            if kind not in PAGE_EVENTS or serial != self._serial + 1:
                return False
            self._pages.pop(project, None)
            self._pages.pop("", None)
            self._epoch += 1
            self._serial = serial
            return True

    def sync(self) -> list[Event]:
        """Apply change-log events newer than the last seen (late ones included: `Follower`); returns them for
        other caches to act on."""
        with self._lock:
            with self.db.session() as session:
                events = self._follower.read(session, self._serial)
            if not events:
                return []
            structural = False
            for event in events:
                if event.kind in PAGE_EVENTS:
                    self._pages.pop(event.project, None)
                    self._pages.pop("", None)
                    self._epoch += 1
                elif not event.kind.startswith(OTHER_DOMAINS):
                    structural = True
            if structural:
                self.reload()
            else:
                self._serial = max(self._serial, events[-1].id)
            return events
