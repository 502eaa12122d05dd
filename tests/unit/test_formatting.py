"""One wording for sizes, times and code spans, on the pages and in the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from packyard import formatting
from packyard.cli.output import styled
from packyard.web.render import code, when

NOON = datetime(2026, 1, 15, 12, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "?"), (0, "0 B"), (1023, "1,023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 * 1024**2, "5.0 MiB"),
     (3 * 1024**3, "3.0 GiB"), (2048 * 1024**4, "2,048.0 TiB")],
)  # fmt: skip
def test_size(value: int | None, text: str) -> None:
    assert formatting.size(value) == text


def test_times_are_utc_to_the_minute() -> None:
    assert formatting.moment(NOON) == "2026-01-15 12:00 UTC"
    assert formatting.moment(NOON.astimezone(UTC).replace(tzinfo=None)) == "2026-01-15 12:00 UTC"
    assert formatting.moment(datetime(2026, 1, 15, 23, 30, tzinfo=UTC) + timedelta(hours=1)) == "2026-01-16 00:30 UTC"
    assert formatting.moment(None) == "never" and formatting.moment(None, "no expiry") == "no expiry"
    assert formatting.day(NOON) == "2026-01-15"


@pytest.mark.parametrize(
    ("delta", "text"),
    [(timedelta(seconds=59), "just now"), (timedelta(minutes=1), "1 minute ago"), (timedelta(hours=5), "5 hours ago"),
     (timedelta(days=2, hours=3), "2 days ago"), (timedelta(seconds=-10), "just now")],
)  # fmt: skip
def test_ago(delta: timedelta, text: str) -> None:
    assert formatting.ago(NOON - delta, now=NOON) == text
    assert formatting.ago(None) == "never"


def test_duration() -> None:
    seconds = (0, 86400, 43200, 90, 61.5)
    assert [formatting.duration(s) for s in seconds] == ["", "1 day", "12 hours", "90 seconds", "62 seconds"]


def test_code_spans_on_pages_and_in_the_cli() -> None:
    message = "Run `packyard token create --description <ci>` then retry."
    assert formatting.code_spans(message) == [
        ("Run ", False),
        ("packyard token create --description <ci>", True),
        (" then retry.", False),
    ]
    assert str(code(message)) == "Run <code>packyard token create --description &lt;ci&gt;</code> then retry."
    assert styled(message) == r"Run [bold]`packyard token create --description <ci>`[/] then retry."
    # An unmatched backtick leaves the text as it is, escaped once.
    assert formatting.code_spans("it's a `typo") == [("it's a `typo", False)]
    assert str(code("<b>`x")) == "&lt;b&gt;`x"
    assert styled("[scheduler] `x") == r"\[scheduler] `x"


def test_when_on_pages() -> None:
    assert str(when(NOON)) == '<time datetime="2026-01-15T12:00:30+00:00">2026-01-15 12:00 UTC</time>'
    assert str(when(None)) == '<span class="muted">never</span>'
