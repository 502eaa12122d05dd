"""CLI output in uv's style: data to stdout; `error:`, `Caused by:` and `hint:` lines to stderr."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from packyard import formatting

out = Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False)
err = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)


def styled(text: str) -> str:
    """Rich markup for a message: its `backticked` names and commands in bold, the backticks kept, so the text
    reads the same without color (and a command copied from it runs as printed)."""
    return "".join(
        f"[bold]`{escape(part)}`[/]" if is_code else escape(part) for part, is_code in formatting.code_spans(text)
    )


def fail(message: str, hint: str | None = None, cause: BaseException | None = None) -> None:
    err.print(f"[bold red]error[/]: {styled(message)}", markup=True, soft_wrap=True)
    while cause is not None:
        err.print(f"  [red]Caused by[/]: {styled(str(cause))}", markup=True, soft_wrap=True)
        cause = cause.__cause__
    if hint:
        err.print(f"\n[bold cyan]hint[/]: {styled(hint)}", markup=True, soft_wrap=True)
    sys.exit(1)


# Columns whose values commands take back (ids, GUIDs) or clients use (URLs): never shortened with `…`.
WHOLE = frozenset({"ID", "GUID", "KEY", "URL"})


def table(columns: list[str], rows: list[list[str]]) -> None:
    """Rows under bold headers. Id and URL columns stay whole in a narrow terminal, and output to a pipe or file
    is as wide as the table, so no value is cut at 80 columns."""
    t = Table(*columns, box=None, header_style="bold", pad_edge=False)
    for i, column in enumerate(t.columns):
        if columns[i] in WHOLE:
            column.no_wrap = True
            column.min_width = max([len(columns[i]), *(len(row[i]) for row in rows)])
    for row in rows:
        t.add_row(*map(escape, row))  # data, never markup: `[scheduler]` must print as it is
    console = out
    if not out.is_terminal:
        width = out.measure(t, options=out.options.update_width(100_000)).maximum
        if width > out.width:
            console = Console(width=width, no_color=out.no_color, highlight=False)
    console.print(t)
