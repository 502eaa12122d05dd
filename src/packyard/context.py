"""Everything a running server holds: settings, database, blob store and the read caches."""

from __future__ import annotations

from dataclasses import dataclass

from packyard.auth.authenticator import Authenticator
from packyard.config import Settings
from packyard.db import Database
from packyard.repository.files import FileIndex
from packyard.repository.page_cache import PageCache
from packyard.storage import LocalBlobStore


@dataclass
class AppContext:
    settings: Settings
    db: Database
    store: LocalBlobStore
    pages: PageCache
    files: FileIndex
    auth: Authenticator

    @classmethod
    def open(cls, settings: Settings) -> AppContext:
        from packyard.repository.services import ensure_defaults

        db = Database(settings.database_url)
        db.upgrade()
        with db.session() as session:
            ensure_defaults(session)
        return cls(
            settings=settings,
            db=db,
            store=LocalBlobStore(settings.blob_dir),
            pages=PageCache(db),
            files=FileIndex(db),
            auth=Authenticator(db, settings.token_secret(), settings.authentication.api_token_auth),
        )

    def sync(self) -> None:
        """Catch up with the change log (writes here, by the CLI, or by other server processes)."""
        for event in self.pages.sync():
            if event.kind == "token-revoke":
                self.auth.forget(event.detail)
            elif event.kind in ("subscribe", "repo-create", "repo-edit"):
                self.files.clear()
