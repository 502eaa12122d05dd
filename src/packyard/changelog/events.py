"""The `events` table and `record`, which every write in every domain calls in its own transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from packyard.db import Base, UTCDateTime, table_of, utcnow


class Event(Base):
    """The change log: every write appends here. Its id is the serial that caches and snapshots follow."""

    __tablename__ = "events"
    # Snapshots read a project's yank history from here.
    __table_args__ = (Index("ix_events_source_project", "source_id", "project"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(40))
    source_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    repository_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    project: Mapped[str] = mapped_column(String(200), default="")
    filename: Mapped[str] = mapped_column(String(300), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


_INSERT_EVENT = table_of(Event).insert().returning(table_of(Event).c.id)


def record(session: Session, kind: str, **fields: object) -> int:
    """Append to the change log; returns the event id, which is the new serial."""
    return session.execute(_INSERT_EVENT, {"kind": kind, **fields}).scalar_one()
