"""Everything a running server holds: settings, database, blob store, the read caches, and the publishing parts."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass, field

from packyard.auth.authenticator import Authenticator
from packyard.auth.oidc import Issuers
from packyard.changelog.events import record
from packyard.changelog.prepare import prepare
from packyard.config import Settings
from packyard.db import Database
from packyard.metrics import WorkerFigures
from packyard.publishing.deploy import changes
from packyard.publishing.deploy.changes import Change
from packyard.publishing.deploy.pipeline import Deployer
from packyard.publishing.deploy.tasks import Tasks
from packyard.publishing.environments.admin import check_host
from packyard.publishing.environments.builder import Environments
from packyard.publishing.permissions import EVENTS as ACCESS_EVENTS
from packyard.publishing.proxy.access import ContentAccess
from packyard.publishing.runtime.limits import defaults
from packyard.publishing.runtime.supervisor import Supervisor, quota
from packyard.publishing.sandbox import Sandbox
from packyard.publishing.sites.registry import Sites
from packyard.publishing.users import Callers
from packyard.publishing.variables import Vault
from packyard.repository.index import indexer
from packyard.repository.index.page_cache import PageCache
from packyard.repository.mirror.service import Mirror
from packyard.repository.serving.files import FileIndex
from packyard.storage import BlobStore, LocalBlobStore, S3BlobStore
from packyard.tls import client_context

# Changes that alter what an API key may do or who its user is: a role, a lock, a revoked key, a group.
CALLER_EVENTS = frozenset(
    {"user-role", "user-lock", "key-revoke", "group-member-add", "group-member-remove", "group-delete"}
)


@dataclass
class AppContext:
    settings: Settings
    db: Database
    store: BlobStore
    pages: PageCache
    files: FileIndex
    auth: Authenticator
    mirror: Mirror = field(init=False)
    # Publishing: deploy tasks, the variables' key, built environments, app processes, content served as files.
    tasks: Tasks = field(init=False)
    vault: Vault = field(init=False)
    environments: Environments = field(init=False)
    sandbox: Sandbox = field(init=False)
    supervisor: Supervisor = field(init=False)
    sites: Sites = field(init=False)
    deployer: Deployer = field(init=False)
    callers: Callers = field(init=False)
    access: ContentAccess = field(init=False)  # the proxy's view of who may see which content
    # `--workers`: this worker's plain-number metrics, saved for the scrapes other workers answer (metrics.py).
    figures: WorkerFigures | None = None
    issuers: Issuers = field(default_factory=Issuers)  # OpenID issuers met: the sign-in provider, CI issuers
    _roots_rendered_at: float = field(default=0.0, repr=False)
    _root_interval: float = field(default=0.5, repr=False)
    _last_upload: float = field(default=0.0, repr=False)
    # Content whose runtime settings changed (the change log says so); the event loop applies them.
    runtime_changes: set[str] = field(default_factory=set, repr=False)
    # Content another node activated, changed the variables of, or deleted; the event loop follows them.
    content_changes: list[Change] = field(default_factory=list, repr=False)

    # Root pages list every name, so rendering one costs O(projects). Render stale roots at most every half
    # second, and never more than a tenth of the time: a bulk upload stays O(1) per file at any size.
    ROOT_INTERVAL = 0.5
    ROOT_DUTY = 0.1
    # Installers never read the root, so while uploads keep coming (twine sends one file after another) wait
    # for a pause before rendering it, or for ROOT_MAX_LAG seconds: the render would slow every upload.
    ROOT_QUIET = 0.3
    ROOT_MAX_LAG = 5.0

    @classmethod
    def open(cls, settings: Settings) -> AppContext:
        # Its keys, database and bundles are for the server alone; content sees parts of it only through mounts.
        with contextlib.suppress(OSError):
            settings.data_dir.chmod(0o700)
        db = Database(settings.database_url)
        prepare(db, settings.mirror.upstream)
        store = open_store(settings)
        context = cls(
            settings=settings,
            db=db,
            store=store,
            pages=PageCache(db),
            files=FileIndex(db, store),
            auth=Authenticator(db, settings.token_secret(), settings.authentication.api_token_auth),
        )
        context.mirror = Mirror(
            settings.mirror,
            db,
            store,
            on_change=lambda: context.sync(render_roots=False),
            trust=client_context(settings.server.ca_bundle),
        )
        node = f"{socket.gethostname()}:{os.getpid()}"  # this server process, among the nodes on one database
        context.tasks = Tasks(db, node)
        context.vault = Vault(settings.encryption_key())
        context.sandbox = Sandbox(settings.applications.sandbox, settings.applications.run_as)
        context.sandbox.probe()
        context.environments = Environments(settings, db, context.sandbox)
        context.supervisor = Supervisor(
            context.sandbox, defaults(settings.scheduler), float(settings.scheduler.queue_timeout)
        )
        context.sites = Sites(
            settings.apps_dir,
            context.sandbox,
            quota(defaults(settings.scheduler)),
            settings.quarto.executable,
            float(settings.publishing.render_timeout),
        )
        context.deployer = Deployer(
            settings,
            db,
            store,
            context.tasks,
            context.vault,
            context.environments,
            context.supervisor,
            context.sites,
            node,
        )
        if settings.python.external:  # must fail the start when fatal; otherwise found in the background
            check_host(settings.python)
        context.callers = Callers(db)
        context.access = ContentAccess(context)
        context.render_roots()
        return context

    def upload_arrived(self) -> None:
        """An upload was stored here; root renders wait for uploads to pause (see ROOT_QUIET)."""
        self._last_upload = time.monotonic()

    def render_roots(self) -> None:
        """Re-render root pages that new projects marked stale."""
        started = self._roots_rendered_at = time.monotonic()
        with self.db.session() as session:
            if not indexer.stale_roots(session):
                return
            indexer.render_stale_roots(session, record(session, "root-render"))
        self._root_interval = max(self.ROOT_INTERVAL, (time.monotonic() - started) / self.ROOT_DUTY)

    def sync(self, render_roots: bool = True) -> None:
        """Catch up with the change log (writes here, by the CLI, or by other server processes). Uploads
        pass `render_roots=False`: a root page at 50,000 names must not hold up the upload that made it stale."""
        now = time.monotonic()
        since_render = now - self._roots_rendered_at
        quiet = now - self._last_upload >= self.ROOT_QUIET or since_render >= self.ROOT_MAX_LAG
        if render_roots and since_render >= self._root_interval and quiet:
            self.render_roots()
        for event in self.pages.sync():
            if event.kind == "upload":
                self._last_upload = time.monotonic()
            elif event.kind == "token-revoke":
                self.auth.forget(event.detail)
            elif event.kind in ("subscribe", "repo-create", "repo-edit", "policy", "curate", "delete"):
                self.files.clear()
            elif event.kind == "content-runtime":
                self.runtime_changes.add(event.detail)
            elif (change := changes.parse(event.kind, event.detail)) is not None:
                self.content_changes.append(change)
                if change.kind == changes.DELETED:
                    self.access.forget()  # its row: the proxy answers 404 now, not when its cache expires
            if event.kind in CALLER_EVENTS:
                self.callers.forget_all()
            if event.kind in ACCESS_EVENTS:
                self.access.forget()


def open_store(settings: Settings) -> BlobStore:
    """The blob store `[storage] type` names; an S3 bucket is checked at once, so a wrong name fails the start."""
    storage = settings.storage
    if storage.type != "s3":
        return LocalBlobStore(settings.blob_dir)
    store = S3BlobStore(
        storage.bucket,
        # Uploads are staged here until whole and hashed; downloads for `local_file` land here too.
        settings.data_dir / "s3-staging",
        prefix=storage.prefix,
        endpoint_url=storage.endpoint_url,
        region=storage.region,
        redirect=storage.redirect,
    )
    store.check()
    return store
