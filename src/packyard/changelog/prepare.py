"""First start: migrate the schema and create the default source and repository, each step logged."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from packyard.db import Database
from packyard.repository.errors import Conflict
from packyard.repository.services import ensure_defaults, ensure_mirror


def prepare(db: Database, mirror_upstream: str = "") -> None:
    """Migrate the schema and create the defaults; safe when several processes start at once."""
    db.upgrade()
    for step in (ensure_defaults, ensure_mirror) if mirror_upstream else (ensure_defaults,):
        try:
            with db.session() as session:
                step(session)
        except (IntegrityError, Conflict):
            continue  # another process did it first, in one transaction, so it is complete
