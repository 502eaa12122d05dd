"""`packyard env`: the Python environments built for deployed content, on the server host."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from packyard import formatting
from packyard.cli.local import DataDir
from packyard.cli.output import fail, out, table

if TYPE_CHECKING:
    from packyard.publishing.environments.builder import Environments

env_app = typer.Typer(no_args_is_help=True, help="Python environments built for deployed content.")


@contextmanager
def environments(data_dir: Path | None) -> Iterator[Environments]:
    from packyard.changelog.prepare import prepare
    from packyard.cli.local import settings_for
    from packyard.db import Database
    from packyard.errors import PackyardError
    from packyard.publishing.environments.builder import Environments
    from packyard.publishing.sandbox import Sandbox

    settings = settings_for(data_dir)
    db = Database(settings.database_url)
    try:
        prepare(db, settings.mirror.upstream)
        # Listing and removing build nothing: the sandbox is never probed here.
        yield Environments(settings, db, Sandbox(settings.applications.sandbox, settings.applications.run_as))
    except PackyardError as exc:
        fail(str(exc))
    finally:
        db.dispose()


@env_app.command("list")
def list_(data_dir: DataDir = None) -> None:
    """List environments, most recently used first."""
    from packyard.db import utcnow

    with environments(data_dir) as envs:
        now = utcnow()
        rows = [
            [
                e.key[:12],
                e.python_version,
                str(e.installed),
                formatting.size(e.size),
                formatting.ago(e.last_used_at, now),
                ", ".join(e.used_by) if e.used_by else "no",
            ]
            for e in envs.list()
        ]
    table(["KEY", "PYTHON", "PACKAGES", "SIZE", "LAST USED", "IN USE"], rows)


@env_app.command("rm")
def rm(
    key: Annotated[str, typer.Argument(help="Key, or a unique prefix of one, from `packyard env list`.")],
    force: Annotated[bool, typer.Option("--force", help="Remove it even if content runs on it.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Remove an environment; content that used it rebuilds it on its next deploy or start."""
    with environments(data_dir) as envs:
        removed = envs.remove(key, force=force)
    out.print(f"Removed environment {removed[:12]}.")


@env_app.command("prune")
def prune(
    older_than: Annotated[
        str | None,
        typer.Option(help="Idle time, e.g. `7d`, `12h`, `0s`.", show_default="`[python] environment_reap_frequency`"),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Remove environments no deployed content uses that have been idle this long."""
    with environments(data_dir) as envs:
        idle = float(envs.settings.python.environment_reap_frequency)
        if older_than is not None:
            idle = _duration(older_than)
        removed = envs.prune(idle)
    for key in removed:
        out.print(f"Removed environment {key[:12]}.")
    out.print(f"Pruned {len(removed)} environment{'s' if len(removed) != 1 else ''}.")


@env_app.command("clear")
def clear(
    python: Annotated[
        str | None, typer.Option(help="Only environments of this Python, e.g. `3.11.7` or `3.11`.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Remove every environment (of one Python), in use or not, e.g. after rebuilding that Python."""
    with environments(data_dir) as envs:
        keys = envs.clear_runtime_cache(python, dry_run)
    verb = "Would remove" if dry_run else "Removed"
    for key in keys:
        out.print(f"{verb} environment {key[:12]}.")
    if not dry_run and keys:
        out.print("Content rebuilds its environment on its next deploy or start.")


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    value = text.strip().lower()
    if value[:-1].isdigit() and value[-1:] in units:
        return float(int(value[:-1]) * units[value[-1]])
    if value.isdigit():
        return float(value)
    fail(f"`{text}` is not a duration.", hint="Write e.g. `7d`, `12h`, `30m` or `0s`.")
    raise AssertionError  # unreachable; fail exits
