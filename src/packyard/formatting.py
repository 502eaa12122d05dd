"""How sizes, times and code spans read: one wording for the pages and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime

_UNITS = ("KiB", "MiB", "GiB", "TiB")
_SPANS = (("day", 86400), ("hour", 3600), ("minute", 60))


def size(value: int | None) -> str:
    """Bytes for people: `1,234 B`, `12.3 KiB`, `4.5 MiB`; `?` when unknown."""
    if value is None:
        return "?"
    if value < 1024:
        return f"{value:,} B"
    scaled = float(value)
    for unit in _UNITS:
        scaled /= 1024
        if scaled < 1024 or unit == _UNITS[-1]:
            break
    return f"{scaled:,.1f} {unit}"


def moment(value: datetime | None, never: str = "never") -> str:
    """A time in UTC to the minute, `2026-01-15 09:30 UTC`; `never` for None."""
    if value is None:
        return never
    return f"{_utc(value):%Y-%m-%d %H:%M} UTC"


def day(value: datetime) -> str:
    """The UTC day of a time, `2026-01-15`."""
    return f"{_utc(value):%Y-%m-%d}"


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest whole unit: `3 hours ago`, `just now`, `never`."""
    if value is None:
        return "never"
    seconds = max(((now or datetime.now(UTC)) - _utc(value)).total_seconds(), 0)
    for unit, length in _SPANS:
        if seconds >= length:
            count = int(seconds // length)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def duration(seconds: float) -> str:
    """A setting in seconds in its largest whole unit, `1 day` or `12 hours`; empty when off (0 or less)."""
    if seconds <= 0:
        return ""
    for unit, length in (*_SPANS, ("second", 1)):
        if seconds >= length and seconds % length == 0 or unit == "second":
            count = round(seconds / length)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} seconds"


def code_spans(text: str) -> list[tuple[str, bool]]:
    """A message split at its backticks into (text, is_code) parts, the way messages mark names and commands.
    An unmatched backtick leaves the whole text plain."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:
        return [(str(text), False)]
    return [(part, i % 2 == 1) for i, part in enumerate(parts) if part or i % 2]


def _utc(value: datetime) -> datetime:
    # Rows from SQLite come back naive; every time Packyard stores is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
