"""`packyard run --workers N`: N server processes on one socket, each a node of its own on the shared database.

The parent binds the socket, checks what a start checks (configuration, migrations, the blob store, the keys)
once, then hands the socket to uvicorn's own supervisor (`uvicorn.supervisors.Multiprocess`), which spawns the
workers, restarts one that dies and stops them all on SIGTERM. Each worker opens its own `AppContext` and follows
the change log, exactly as a node does; what must be one per process (extracted bundles, content logs, rendered
sites) goes under `workers/<slot>/` (`Settings.apps_dir`), where `slot` is the first of 1..2N whose lock file no
live worker holds, so a replacement takes over the folders of the worker it replaces.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from starlette.types import ASGIApp
from uvicorn.config import STARTUP_FAILURE

from packyard.app import create_app
from packyard.changelog.prepare import prepare
from packyard.config import Settings
from packyard.context import open_store
from packyard.db import Database
from packyard.errors import ConfigError
from packyard.http_errors import install_reason_phrases
from packyard.publishing.sandbox import Sandbox

WORKERS_DIR = "workers"
METRICS_DIR = "metrics"  # prometheus_client's multiprocess files and the workers' figures (metrics.py)

log = logging.getLogger("packyard")
_held: list[int] = []  # the slot's lock file stays open (and locked) for the worker's life


def check_database(settings: Settings) -> None:
    """SQLite serves from one process: refuse more workers on it, saying how to get them."""
    if settings.server.workers > 1 and settings.database_url.startswith("sqlite"):
        raise ConfigError(
            f"{settings.server.workers} worker processes (`--workers`) need PostgreSQL, but this server uses "
            "SQLite, which serves from one process: set `[database] url` in packyard.toml (or "
            "PACKYARD_DATABASE_URL) to a PostgreSQL URL such as `postgresql+psycopg://user@host:5432/packyard`, "
            "or run with `--workers 1`."
        )


def preflight(settings: Settings) -> None:
    """What every worker would check or create at its start, done once before any starts: the schema's
    migrations and the defaults, the blob store (a missing bucket fails here), the key files (created once,
    not raced by N workers) and the sandbox's user."""
    db = Database(settings.database_url)
    try:
        prepare(db, settings.mirror.upstream)
    finally:
        db.dispose()
    open_store(settings)
    settings.token_secret()
    settings.encryption_key()
    Sandbox(settings.applications.sandbox, settings.applications.run_as).probe()


def metrics_folder(settings: Settings) -> Path:
    """An empty folder for this run's metrics files: counts start at zero with the server, as with one process."""
    folder = settings.data_dir / WORKERS_DIR / METRICS_DIR
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def claim_slot(data_dir: Path, workers: int) -> int:
    """The first slot whose lock no live worker holds; the kernel releases it when this process ends, kill -9
    included. Twice `workers` slots, since a SIGHUP restart starts each replacement before its predecessor stops."""
    folder = data_dir / WORKERS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for slot in range(1, 2 * workers + 1):
        fd = os.open(folder / f"{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _held.append(fd)
        return slot
    raise RuntimeError(f"All {2 * workers} worker slots in {folder} are held by live processes")


@dataclass(frozen=True)
class WorkerApp:
    """The app factory uvicorn calls in each spawned worker (pickled to it, hence a plain dataclass)."""

    settings: Settings

    def __call__(self) -> ASGIApp:
        try:
            install_reason_phrases()
            settings = replace(self.settings, worker=claim_slot(self.settings.data_dir, self.settings.server.workers))
            app = create_app(settings)
        except Exception:
            # uvicorn's supervisor stops the server on this code instead of restarting a worker that cannot start.
            log.exception("A worker could not start")
            sys.exit(STARTUP_FAILURE)
        gc.collect()  # see server.py: startup objects out of the collector's generations
        gc.freeze()
        return app
