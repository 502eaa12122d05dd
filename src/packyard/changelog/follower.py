"""Reading the change log from where a cache last was, including events whose ids commit out of order."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.changelog.events import Event

GAP_SECONDS = 60
MAX_GAPS = 10_000


class Follower:
    """PostgreSQL hands out event ids at insert time but transactions commit in any order, so an id below the
    newest seen can become visible later. Ids skipped over are remembered as gaps and looked for again on every
    read until they are `GAP_SECONDS` old (a rolled-back transaction's id never appears)."""

    def __init__(self) -> None:
        self.gaps: dict[int, float] = {}  # event id -> when it was first found missing

    def read(self, session: Session, serial: int) -> list[Event]:
        """The events after `serial` in id order, preceded by those that filled a gap since the last read."""
        events = list(session.scalars(select(Event).where(Event.id > serial).order_by(Event.id)))
        late = list(session.scalars(select(Event).where(Event.id.in_(list(self.gaps))))) if self.gaps else []
        now = time.monotonic()
        for event in late:
            del self.gaps[event.id]
        for gap, noticed in list(self.gaps.items()):
            if now - noticed > GAP_SECONDS:
                del self.gaps[gap]
        if events and events[-1].id - serial <= MAX_GAPS:
            seen = {e.id for e in events}
            for missing in range(serial + 1, events[-1].id):
                if missing not in seen:
                    self.gaps[missing] = now
        return late + events
