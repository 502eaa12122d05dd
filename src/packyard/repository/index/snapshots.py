"""Dated snapshots: which days have changes. The pages themselves are rendered from history (`indexer.render_at`)."""

from __future__ import annotations

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from packyard.changelog.events import Event
from packyard.repository.index import indexer
from packyard.repository.models import DistFile


def transaction_dates(session: Session, repo_id: int) -> list[str]:
    """`YYYY-MM-DD` (UTC) of every day on which a file served by the repository appeared, was yanked or
    unyanked, or was deleted; oldest first."""
    source_ids = indexer.sources_of(session, repo_id)
    if not source_ids:
        return []
    in_sources = DistFile.source_id.in_(source_ids)
    days = union(
        select(func.date(DistFile.uploaded_at).label("day")).where(in_sources),
        select(func.date(DistFile.deleted_at).label("day")).where(in_sources, DistFile.deleted_at.is_not(None)),
        select(func.date(Event.at).label("day")).where(
            Event.source_id.in_(source_ids), Event.kind.in_(("yank", "unyank", "delete"))
        ),
    ).subquery()
    return sorted({str(day)[:10] for day in session.scalars(select(days.c.day).distinct())})
