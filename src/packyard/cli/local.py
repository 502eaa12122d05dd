"""Commands run on the server host: the data directory's settings, and a session on its database."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from packyard.changelog.prepare import prepare
from packyard.cli.output import err, fail
from packyard.config import (
    CONFIG_NAME,
    DEFAULT_DATA_DIR,
    SERVED_ADDRESS_NAME,
    Settings,
    load_settings,
    write_default_config,
)
from packyard.db import Database
from packyard.errors import ConfigError, PackyardError

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="PACKYARD_DATA_DIR", show_default=DEFAULT_DATA_DIR, help="The server's data directory."
    ),
]


def settings_for(data_dir: Path | None, create: bool = False, overrides: dict[str, str] | None = None) -> Settings:
    """The settings of an existing data directory, said on stderr; `create` makes a new one (`run`, `init`).
    `overrides` are `PACKYARD_*` values that win over the environment (`run --port`)."""
    environ = {**os.environ, **(overrides or {})}
    try:
        settings = load_settings(data_dir, environ)
    except ConfigError as exc:
        fail(str(exc), hint="Fix the file or the PACKYARD_* variable, then run the command again.")
        raise  # unreachable; fail exits
    path = settings.data_dir.resolve()
    if not (path / CONFIG_NAME).is_file():
        if not create:
            fail(
                f"No Packyard data directory at `{path}` (it has no `{CONFIG_NAME}`)",
                hint="Pass the server's data directory with `--data-dir DIR` or `PACKYARD_DATA_DIR=DIR`, or create "
                f"one here with `packyard init --data-dir {shlex.quote(str(path))}` "
                "(`packyard run` creates one on first start).",
            )
        write_default_config(path)
        err.print(f"Created data directory {path}", soft_wrap=True)
    elif not create:
        err.print(f"Using data directory {path}", soft_wrap=True)
    settings = load_settings(path, environ)
    served = path / SERVED_ADDRESS_NAME
    if not create and not settings.address_configured and served.is_file():
        settings.server.address = served.read_text().strip() or settings.server.address
    return settings


@contextmanager
def local_session(data_dir: Path | None) -> Iterator[tuple[Settings, Session]]:
    """A session on the data directory's database, for commands run on the server host."""
    settings = settings_for(data_dir)
    db = Database(settings.database_url)
    try:
        prepare(db, settings.mirror.upstream)
        with db.session() as session:
            yield settings, session
    except PackyardError as exc:
        fail(str(exc))
    finally:
        db.dispose()
