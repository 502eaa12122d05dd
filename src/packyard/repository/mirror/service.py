"""The mirror at run time: refresh upstream pages on demand, and fetch files once, streaming them as they arrive.

Pages: a repository's view of a name is refreshed when a client asks for it and the cached copy is older than
`[mirror] index_ttl` (revalidated with the upstream's ETag). Sources are walked in priority order and the walk
stops at the first that has the name, so a private name is never even asked of the upstream. Concurrent
requests for one name share one upstream request; when the upstream fails, the last good copy is served as
stale and the upstream is left alone for `retry_after` seconds.

Files: the first request starts one download into a staged blob; every request for that file streams from the
staging file as it grows. The last bytes are held back until the whole file matched the upstream's sha256,
so a client never receives a complete response for a corrupt file. On PostgreSQL, several nodes or workers
elect one downloader per file (election.py); requests on the others wait for the blob in the shared store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import httpx
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from packyard import __version__, metrics
from packyard.changelog.events import record
from packyard.config import MirrorSettings
from packyard.db import Database, utcnow
from packyard.repository.errors import UpstreamUnavailable
from packyard.repository.index import indexer
from packyard.repository.index.page_cache import RepoInfo, SourceInfo
from packyard.repository.mirror import records
from packyard.repository.mirror.election import Election
from packyard.repository.mirror.upstream import ACCEPT, UpstreamPage, parse_page
from packyard.repository.models import CoreMetadata, DistFile, Project
from packyard.repository.policy.rules import curated_specifier
from packyard.storage import BlobStore
from packyard.tls import describe_failure

log = logging.getLogger("packyard.mirror")
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
HOLD_BACK = 64 * 1024
MAX_FRESH = 500_000
MAX_LOGGED_PROBLEMS = 5  # a hostile page may list thousands; the log shows the first few and the count
CHUNK = 256 * 1024
ELECTION_POLL = 0.2  # seconds between looks for a blob another process is downloading


@dataclass(frozen=True)
class Refreshed:
    found: bool
    fresh_for: float  # seconds
    stale: str | None = None  # why the cached copy is served without revalidation


class Download:
    """One upstream download of one blob, readable by any number of clients while it runs."""

    def __init__(self, store: BlobStore, digest: str, url: str) -> None:
        self.store = store
        self.digest = digest
        self.url = url
        self.staged = store.stage()
        self.received = 0
        self.total: int | None = None
        self.done = False
        self.error: str | None = None
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self._tick = asyncio.Event()

    def _progress(self) -> None:
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    async def run(self, client: httpx.AsyncClient) -> None:
        try:
            async with client.stream("GET", self.url, headers={"accept-encoding": "identity"}) as response:
                if response.status_code != 200:
                    raise UpstreamUnavailable(
                        f"The upstream answered {response.status_code} for {self.url}; try again later."
                    )
                length = response.headers.get("content-length")
                self.total = int(length) if length and length.isdigit() else None
                self.started.set()
                async for chunk in response.aiter_bytes(CHUNK):
                    self.staged.write(chunk)
                    self.staged.flush()  # readers of the staging file see it
                    self.received += len(chunk)
                    self._progress()
            if self.staged.digest != self.digest:
                raise UpstreamUnavailable(
                    f"The upstream sent {self.url} with sha256 {self.staged.digest}, but its index says "
                    f"{self.digest}; nothing was stored. Tell the upstream's operators."
                )
            await run_in_threadpool(self.store.commit, self.staged)
            self.done = True
        except Exception as exc:  # every failure must reach the waiting clients
            self.error = str(exc) if isinstance(exc, UpstreamUnavailable) else describe_failure(exc)
            log.warning("Download of %s failed: %s", self.url, self.error)
            self.store.discard(self.staged)
        finally:
            self.started.set()
            self.finished.set()
            self._progress()

    def stored_elsewhere(self, size: int) -> None:
        """Another process downloaded and committed the blob: serve it from the store."""
        self.store.discard(self.staged)
        self.total = self.received = size
        self.done = True
        self.started.set()
        self.finished.set()
        self._progress()

    def failed(self, error: str) -> None:
        """The download could not start: every waiting client gets `error`."""
        self.error = error
        self.store.discard(self.staged)
        self.started.set()
        self.finished.set()
        self._progress()

    async def stream(self) -> AsyncIterator[bytes]:
        try:
            handle = self.staged.open()
        except FileNotFoundError:  # committed between the lookup and now, or discarded after a failure
            if self.error is not None:
                raise UpstreamUnavailable(self.error) from None
            handle = self.store.open(self.digest)
        with handle:
            sent = 0
            while True:
                tick = self._tick
                limit = self.received if self.done else self.received - HOLD_BACK
                if sent < limit:
                    chunk = handle.read(min(limit - sent, CHUNK))
                    sent += len(chunk)
                    yield chunk
                    continue
                if self.error is not None:
                    raise UpstreamUnavailable(self.error)  # aborts the response: the client sees it incomplete
                if self.done:
                    return
                await tick.wait()


async def _shared(tasks: dict[K, asyncio.Task[T]], key: K, start: Callable[[], Coroutine[object, object, T]]) -> T:
    """Await the task running for `key`, starting it if there is none: concurrent callers share one upstream
    request, and a caller that goes away does not cancel it for the others."""
    task = tasks.get(key)
    if task is None:
        task = tasks[key] = asyncio.ensure_future(start())
        task.add_done_callback(lambda _t: tasks.pop(key, None))
    return await asyncio.shield(task)


class Mirror:
    def __init__(
        self,
        settings: MirrorSettings,
        db: Database,
        store: BlobStore,
        on_change: Callable[[], None],
        trust: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.trust = trust  # the CAs the upstream's certificate must chain to (`[server] ca_bundle`); None: httpx's
        self.db = db
        self.store = store
        self.on_change = on_change
        self._client: httpx.AsyncClient | None = None
        self._fresh: dict[tuple[int, str], float] = {}
        self._refreshing: dict[tuple[int, str], asyncio.Task[Refreshed]] = {}
        self._down_until: dict[int, float] = {}
        self._downloads: dict[str, Download] = {}
        self._metadata: dict[str, asyncio.Task[bytes]] = {}
        self.election = Election(db.url)

    # -- pages ---------------------------------------------------------------------------------------------

    def is_fresh(self, repo_id: int, name: str) -> bool:
        return self._fresh.get((repo_id, name), 0.0) > time.monotonic()

    def upstream_of(self, source: SourceInfo) -> str:
        url = source.upstream or self.settings.upstream
        if not url:
            raise UpstreamUnavailable(
                f"Mirror source `{source.name}` has no upstream; set `[mirror] upstream` in packyard.toml "
                "(e.g. `https://pypi.org/simple/`)."
            )
        return url.rstrip("/") + "/"

    async def ensure(self, repo: RepoInfo, name: str) -> str | None:
        """Bring the repository's view of `name` up to date; returns why it is stale, if it is."""
        fresh_for = float(self.settings.index_ttl)
        stale = None
        for source in repo.sources:
            if not source.is_mirror:
                if await run_in_threadpool(self._has_project, source.id, name):
                    break
                continue
            if source.type == "curated-pypi" and not await run_in_threadpool(self._curated, source.id, name):
                continue
            refreshed = await self._refresh(source, name)
            fresh_for = min(fresh_for, refreshed.fresh_for)
            if refreshed.found:
                stale = refreshed.stale
                break
        if stale is None:
            if len(self._fresh) >= MAX_FRESH:
                self._fresh.clear()
            self._fresh[(repo.id, name)] = time.monotonic() + fresh_for
        else:  # every request comes back here, so each one says it is stale; the upstream is left alone meanwhile
            self._fresh.pop((repo.id, name), None)
        return stale

    def forget(self, name: str) -> None:
        for key in [k for k in self._fresh if k[1] == name]:
            del self._fresh[key]

    async def upstream_lists(self, source: SourceInfo, name: str) -> str | None:
        """The upstream's page URL for `name` when the upstream lists it (or listed it at the last refresh);
        None when it does not, has no upstream, or cannot be asked. The mirror's records are left as they are."""
        try:
            url = self.upstream_of(source) + name + "/"
        except UpstreamUnavailable:
            return None
        if source.type == "curated-pypi" and not await run_in_threadpool(self._curated, source.id, name):
            return None
        found, _etag, age, _has_files = await run_in_threadpool(self._cached_state, source.id, name)
        if age is not None and found:
            return url
        try:
            response = await self.client.get(url, headers={"accept": ACCEPT})
        except httpx.HTTPError as exc:
            log.info("Could not ask %s whether it lists `%s`: %s", url, name, exc)
            return None
        return url if response.status_code == 200 else None

    def _has_project(self, source_id: int, name: str) -> bool:
        with self.db.session() as session:
            found = session.scalar(select(Project.id).where(Project.source_id == source_id, Project.name == name))
            return found is not None

    def _curated(self, source_id: int, name: str) -> bool:
        with self.db.session() as session:
            return curated_specifier(session, source_id, name) is not None

    async def _refresh(self, source: SourceInfo, name: str) -> Refreshed:
        return await _shared(self._refreshing, (source.id, name), lambda: self._fetch_page(source, name))

    def _cached_state(self, source_id: int, name: str) -> tuple[bool, str, float | None, bool]:
        """(found, etag, seconds since fetched or None, whether files are cached) of a mirrored name."""
        with self.db.session() as session:
            page = records.mirror_page(session, source_id, name)
            has = session.scalar(select(Project.id).where(Project.source_id == source_id, Project.name == name))
            if page is None:
                return False, "", None, has is not None
            age = (utcnow() - page.fetched_at).total_seconds()
            return page.found, page.etag, age, has is not None

    async def _fetch_page(self, source: SourceInfo, name: str) -> Refreshed:
        ttl = float(self.settings.index_ttl)
        found, etag, age, has_files = await run_in_threadpool(self._cached_state, source.id, name)
        if age is not None and age < ttl:
            metrics.MIRROR_PAGES.labels("fresh").inc()  # fetched recently (by this or another process)
            return Refreshed(found, ttl - age)
        url = self.upstream_of(source) + name + "/"
        if self._down_until.get(source.id, 0.0) > time.monotonic():
            metrics.MIRROR_PAGES.labels("upstream-down").inc()
            return self._unavailable(source, name, url, "the upstream failed moments ago", has_files)
        headers = {"accept": ACCEPT}
        if etag and has_files:
            headers["if-none-match"] = etag
        metrics.MIRROR_PAGES.labels("revalidated" if "if-none-match" in headers else "fetched").inc()
        try:
            response = await self.client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            return self._failed(source, name, url, describe_failure(exc), has_files)
        now = utcnow()
        if response.status_code == 304:
            await run_in_threadpool(self._mark, source.id, name, True, etag, now)
            return Refreshed(True, ttl)
        if response.status_code in (404, 410):
            await run_in_threadpool(self._mark, source.id, name, has_files, "", now)
            return Refreshed(has_files, ttl)
        if response.status_code != 200:
            return self._failed(source, name, url, f"HTTP {response.status_code}", has_files)
        try:
            page = parse_page(
                str(response.url),
                response.headers.get("content-type", ""),
                response.content,
                response.headers.get("etag", ""),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return self._failed(source, name, url, f"unreadable page ({exc})", has_files)
        if page.problems:
            shown = "; ".join(page.problems[:MAX_LOGGED_PROBLEMS])
            more = len(page.problems) - MAX_LOGGED_PROBLEMS
            log.warning(
                "%s: dropped hashes that are not sha256: %s%s", url, shown, f" (and {more} more)" if more > 0 else ""
            )
        if page.skipped:
            log.info("%s: skipped %d files without a valid sha256 or not a wheel or sdist", url, page.skipped)
        changed = await run_in_threadpool(self._apply, source.id, name, page, now)
        if changed:
            await run_in_threadpool(self.on_change)
        return Refreshed(bool(page.files) or has_files, ttl)

    def _failed(self, source: SourceInfo, name: str, url: str, error: str, has_files: bool) -> Refreshed:
        log.warning("Upstream %s failed: %s", url, error)
        self._down_until[source.id] = time.monotonic() + self.settings.retry_after
        return self._unavailable(source, name, url, error, has_files)

    def _unavailable(self, source: SourceInfo, name: str, url: str, error: str, has_files: bool) -> Refreshed:
        if not has_files:
            raise UpstreamUnavailable(
                f"Could not reach the upstream of mirror source `{source.name}` for `{name}` ({url}): {error}. "
                "Cached projects are still served; try again when the upstream is back."
            )
        return Refreshed(True, float(self.settings.retry_after), stale=error)

    def _mark(self, source_id: int, name: str, found: bool, etag: str, at: datetime) -> None:
        with self.db.session() as session:
            records.mark_fetched(session, source_id, name, found, etag, at)

    def _apply(self, source_id: int, name: str, page: UpstreamPage, at: datetime) -> bool:
        for attempt in range(2):
            try:
                with self.db.session() as session:
                    changed = records.apply_page(session, source_id, name, page)
                    records.mark_fetched(session, source_id, name, True, page.etag, at)
                    return changed
            except IntegrityError:
                # Another server process stored the same page first; apply again on top of its rows.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    # -- files ---------------------------------------------------------------------------------------------

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(self.settings.timeout, connect=min(self.settings.timeout, 5))
            self._client = httpx.AsyncClient(
                verify=self.trust if self.trust is not None else True,
                timeout=timeout,
                follow_redirects=True,
                headers={"user-agent": f"packyard/{__version__}"},
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        self.election.dispose()

    async def download(self, digest: str, url: str, source_id: int) -> Download:
        """The running download of this blob, started if needed; returns once its headers are known."""
        download = self._downloads.get(digest)
        if download is not None or not self.election.enabled:  # else `_elected` counts it, knowing who downloads
            metrics.MIRROR_FILES.labels("joined" if download is not None else "started").inc()
        if download is None:
            download = Download(self.store, digest, url)
            self._downloads[digest] = download
            run = self._elected(download) if self.election.enabled else download.run(self.client)
            task = asyncio.ensure_future(run)

            def finished(_task: object) -> None:
                self._downloads.pop(digest, None)
                if download.done:
                    asyncio.ensure_future(run_in_threadpool(self._fill_size, source_id, digest, download.received))

            task.add_done_callback(finished)
        await download.started.wait()
        if download.error is not None and not download.received:
            raise UpstreamUnavailable(download.error)
        return download

    async def _elected(self, download: Download) -> None:
        """Download once this process holds the file's lock, unless another process stores the blob first."""
        digest = download.digest
        connection: Connection | None = None
        leading = False
        try:
            try:
                connection = await run_in_threadpool(self.election.connect)
                while True:
                    leading = await run_in_threadpool(self.election.try_lock, connection, digest)
                    if await run_in_threadpool(self.store.exists, digest):  # stored by the one that held the lock
                        metrics.MIRROR_FILES.labels("elsewhere").inc()
                        return download.stored_elsewhere(await run_in_threadpool(self.store.size, digest))
                    if leading:
                        break
                    await asyncio.sleep(ELECTION_POLL)
            except Exception as exc:  # the database or the store failed: the waiting clients must hear it
                # The class only: a driver's message names hosts and databases (the log has it).
                log.warning("Could not elect the downloader of %s: %r", download.url, exc)
                return download.failed(
                    f"Could not tell whether another node is downloading {download.url} ({type(exc).__name__}); "
                    "try again shortly."
                )
            metrics.MIRROR_FILES.labels("started").inc()
            await download.run(self.client)
        finally:
            if connection is not None:
                with contextlib.suppress(Exception):  # a lost connection has released the lock already
                    await run_in_threadpool(self.election.release, connection, digest, leading)

    def _fill_size(self, source_id: int, digest: str, size: int) -> None:
        """HTML upstreams list no sizes: record the real one once the bytes are here."""
        with self.db.session() as session:
            rows = list(
                session.scalars(
                    select(DistFile).where(
                        DistFile.source_id == source_id, DistFile.sha256 == digest, DistFile.size != size
                    )
                )
            )
            if not rows:
                return
            for row in rows:
                row.size = size
            project = session.get(Project, rows[0].project_id)
            assert project is not None
            serial = record(session, "mirror", source_id=source_id, project=project.name, detail="size")
            indexer.source_changed(session, source_id, project.name, serial, new_project=False)
        self.on_change()

    async def metadata(self, digest: str, url: str) -> bytes:
        """A wheel's `.metadata` from the upstream, checked and kept in the database."""
        return await _shared(self._metadata, digest, lambda: self._fetch_metadata(digest, url))

    async def _fetch_metadata(self, digest: str, url: str) -> bytes:
        try:
            response = await self.client.get(url)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"Could not fetch {url} from the upstream: {describe_failure(exc)}; try again later."
            ) from exc
        if response.status_code != 200:
            raise UpstreamUnavailable(f"The upstream answered {response.status_code} for {url}; try again later.")
        data = response.content
        if hashlib.sha256(data).hexdigest() != digest:
            raise UpstreamUnavailable(
                f"The upstream sent {url} with a sha256 other than its index says ({digest}); nothing was stored."
            )

        def keep() -> None:
            with self.db.session() as session:
                if session.get(CoreMetadata, digest) is None:
                    session.add(CoreMetadata(sha256=digest, data=data))

        await run_in_threadpool(keep)
        return data
