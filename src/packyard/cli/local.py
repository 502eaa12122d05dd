"""Commands run on the server host: the data directory's settings, and a session on its database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from packyard.cli.output import fail
from packyard.config import Settings, load_settings, write_default_config
from packyard.db import Database
from packyard.errors import ConfigError, PackyardError

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="PACKYARD_DATA_DIR", help="Data directory [default: ./packyard-data]."),
]


def settings_for(data_dir: Path | None) -> Settings:
    try:
        settings = load_settings(data_dir)
    except ConfigError as exc:
        fail(str(exc), hint="Fix the file or the PACKYARD_* variable, then run the command again.")
        raise  # unreachable; fail exits
    write_default_config(settings.data_dir)
    return load_settings(settings.data_dir)


@contextmanager
def local_session(data_dir: Path | None) -> Iterator[tuple[Settings, Session]]:
    """A session on the data directory's database, for commands run on the server host."""
    from packyard.changelog.prepare import prepare

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
