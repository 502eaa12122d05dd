"""Load wheels into a Packyard data directory through Packyard's own upload code, without HTTP.

For corpora too big to upload in reasonable time (50,000 projects is 250,000 files): the same checks and storage as
an HTTP upload (`accept_upload`), minus the request handling. Run by bench/servers.py as
`python bench/packyard_load.py DATA_DIR SOURCE LIST_FILE`, several at once on disjoint lists."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sqlalchemy.exc import OperationalError
from uploads import form_fields

from packyard.config import load_settings
from packyard.db import Database
from packyard.repository.upload.multipart import UploadParts
from packyard.repository.upload.service import accept_upload
from packyard.storage import LocalBlobStore

ATTEMPTS = 20


def parts_for(store: LocalBlobStore, path: Path) -> UploadParts:
    """What `read_upload` would have parsed from twine's request for this file."""
    data = path.read_bytes()
    parts = UploadParts(fields={k: [v] for k, v in form_fields(path, data).items()}, content_filename=path.name)
    parts.content = store.stage()
    parts.content.write(data)
    return parts


def upload(db: Database, store: LocalBlobStore, source: str, path: Path) -> None:
    # Two loaders share SQLite: a transaction that read before the other committed gets "database is locked"
    # at once (no busy wait for a stale snapshot), so it is simply run again.
    for attempt in range(ATTEMPTS):
        try:
            accept_upload(db, store, source, parts_for(store, path), "bench")
            return
        except OperationalError:
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))


def main(data_dir: str, source: str, list_file: str) -> int:
    settings = load_settings(Path(data_dir))
    db = Database(settings.database_url)
    store = LocalBlobStore(settings.blob_dir)
    files = [Path(line) for line in Path(list_file).read_text().splitlines() if line]
    started = time.monotonic()
    for done, path in enumerate(files, 1):
        upload(db, store, source, path)
        if done % 10_000 == 0:
            print(f"  {list_file}: {done}/{len(files)} ({done / (time.monotonic() - started):.0f} files/s)", flush=True)
    db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
