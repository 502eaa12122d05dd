"""Administering built environments: list them, remove one, prune the unused, clear a Python's, reap."""

from __future__ import annotations

import asyncio
import builtins
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from packyard.changelog.events import record
from packyard.config import PythonSettings, Settings
from packyard.db import Database, utcnow
from packyard.publishing.environments.folder import LOCK_FILE, EnvironmentFolder
from packyard.publishing.environments.interpreters import Interpreter, find_interpreters
from packyard.publishing.environments.plan import host_versions
from packyard.publishing.errors import EnvironmentBuildError, EnvironmentLocked, NotFound
from packyard.publishing.models import Bundle, Content, PythonEnvironment

log = logging.getLogger("packyard.environments")


@dataclass
class EnvironmentInfo:
    """A built environment as `packyard env list` shows it."""

    key: str
    python_version: str
    python_path: str
    packages: list[str]  # the install list it was built from
    installed: int  # packages in its lock, dependencies included
    size: int
    build_seconds: float
    created_at: datetime
    last_used_at: datetime
    used_by: list[str]  # content names whose active bundle runs on it
    content: list[tuple[str, str]]  # the same content as (guid, name)

    @property
    def in_use(self) -> bool:
        return bool(self.used_by)


class EnvironmentAdmin:
    """The administration half of `Environments`: what is built, what uses it, and removing it safely."""

    settings: Settings
    db: Database
    folder: EnvironmentFolder

    # `list` below is a method, so annotations in this class spell the builtin `builtins.list`.

    def list(self) -> builtins.list[EnvironmentInfo]:
        """Every recorded environment, most recently used first, with the content that runs on it."""
        with self.db.session() as session:
            rows = list(session.scalars(select(PythonEnvironment).order_by(PythonEnvironment.last_used_at.desc())))
            content = self._content_using(session)
        infos = []
        for row in rows:
            try:
                lock = (self.folder.directory(row.key) / LOCK_FILE).read_text()
            except OSError:
                lock = ""
            installed = sum(1 for line in lock.splitlines() if line.strip() and not line.startswith("#"))
            infos.append(
                EnvironmentInfo(
                    key=row.key,
                    python_version=row.python_version,
                    python_path=row.python_path,
                    packages=row.packages.splitlines(),
                    installed=installed,
                    size=row.size,
                    build_seconds=row.build_seconds,
                    created_at=row.created_at,
                    last_used_at=row.last_used_at,
                    used_by=[name for _, name in content.get(row.key, [])],
                    content=content.get(row.key, []),
                )
            )
        return infos

    def lock_text(self, key: str) -> str | None:
        """The `uv pip freeze` of a built environment (Connect's lockfile), or None when it is gone."""
        path = self.folder.directory(key) / LOCK_FILE
        return path.read_text() if path.is_file() else None

    def resolve(self, prefix: str) -> str:
        """The full key for a key or a unique prefix of one."""
        with self.db.session() as session:
            keys = set(
                session.scalars(
                    select(PythonEnvironment.key).where(PythonEnvironment.key.startswith(prefix, autoescape=True))
                )
            )
        keys |= {k for k in self.folder.keys_on_disk() if k.startswith(prefix)}
        if not prefix or not keys:
            raise NotFound(f"No environment with key `{prefix}`; `packyard env list` shows them.")
        if len(keys) > 1:
            raise EnvironmentBuildError(
                f"Key `{prefix}` matches {len(keys)} environments ({', '.join(sorted(k[:12] for k in keys))}); "
                "give more of it."
            )
        return keys.pop()

    def remove(self, key: str, force: bool = False) -> str:
        """Remove an environment (a unique key prefix will do); refuses one an active bundle runs on unless
        `force`. Returns the full key."""
        key = self.resolve(key)
        with self.db.session() as session:
            users = self._used_by(session).get(key, [])
        if users and not force:
            raise EnvironmentBuildError(
                f"Environment {key[:12]} is in use by {_content_list(users)}; deploy other bundles first, or force "
                f"it with `packyard env rm --force {key[:12]}` (that content then rebuilds its environment when it "
                "next starts)."
            )
        with self.folder.locked(key):
            self._delete(key, event="env-remove")
        return key

    def prune(self, max_idle_seconds: float) -> builtins.list[str]:
        """Remove environments no active bundle uses that have been idle longer than `max_idle_seconds`, and
        directories with no row. Environments being built are left alone."""
        cutoff = utcnow() - timedelta(seconds=max_idle_seconds)
        self.folder.sweep_trash()
        with self.db.session() as session:
            used = set(self._used_by(session))
            rows = dict(session.execute(select(PythonEnvironment.key, PythonEnvironment.last_used_at)).all())
        candidates = [k for k, last in rows.items() if k not in used and last < cutoff]
        candidates += [k for k in self.folder.keys_on_disk() if k not in rows]
        removed = []
        for key in candidates:
            try:
                with self.folder.locked(key, wait=False):
                    # Looked at again under the lock: a deploy may have just reused it.
                    with self.db.session() as session:
                        row = session.get(PythonEnvironment, key)
                        if row is not None and (row.last_used_at >= cutoff or key in self._used_by(session)):
                            continue
                        if row is None and key in rows:
                            continue
                    self._delete(key)
                    removed.append(key)
            except EnvironmentLocked:
                continue  # being built or removed right now
        return removed

    def clear_runtime_cache(self, python_version: str | None, dry_run: bool) -> builtins.list[str]:
        """Remove every environment for a Python version ("3.11.7" or "3.11"; all when None), in use or not:
        content rebuilds its environment on its next deploy or start."""
        with self.db.session() as session:
            rows = list(session.execute(select(PythonEnvironment.key, PythonEnvironment.python_version)))
        keys = [
            key
            for key, version in rows
            if python_version is None or version == python_version or version.startswith(python_version + ".")
        ]
        if not dry_run:
            for key in keys:
                with self.folder.locked(key):
                    self._delete(key)
        return sorted(keys)

    async def reap_forever(self) -> None:
        """Every `[python] environment_reap_frequency` seconds, prune environments idle that long."""
        every = self.settings.python.environment_reap_frequency
        if every <= 0:
            return
        while True:
            await asyncio.sleep(every)
            try:
                removed = await asyncio.to_thread(self.prune, every)
            except Exception:
                log.exception("Reaping unused Python environments failed; trying again in %s seconds", every)
                continue
            if removed:
                log.info("Removed %d unused Python environments: %s", len(removed), ", ".join(k[:12] for k in removed))

    def _delete(self, key: str, event: str | None = None) -> None:
        """Delete the folder and the row; `event` is logged for removals a person asked for."""
        self.folder.delete(key)
        with self.db.session() as session:
            session.execute(delete(PythonEnvironment).where(PythonEnvironment.key == key))
            if event:
                record(session, event, detail=key)

    @classmethod
    def _used_by(cls, session: Session) -> dict[str, builtins.list[str]]:
        """Environment key -> names of the content whose active bundle runs on it."""
        return {key: [name for _, name in pairs] for key, pairs in cls._content_using(session).items()}

    @staticmethod
    def _content_using(session: Session) -> dict[str, builtins.list[tuple[str, str]]]:
        """Environment key -> (guid, name) of the content whose active bundle runs on it."""
        query = (
            select(Bundle.environment_key, Content.guid, Content.name)
            .join(Content, Content.bundle_id == Bundle.id)
            .where(Bundle.environment_key.is_not(None))
            .order_by(Content.name)
        )
        used: dict[str, builtins.list[tuple[str, str]]] = {}
        for key, guid, name in session.execute(query):
            if key is not None:
                used.setdefault(key, []).append((guid, name))
        return used


def check_host(settings: PythonSettings) -> None:
    """At startup: find the interpreters (slow the first time) and check the external packages."""
    problems = check_externals(find_interpreters(settings.executables), settings)
    if problems and settings.externals_check_is_fatal:
        raise EnvironmentBuildError(
            " ".join(problems) + " Install them, or set `[python] externals_check_is_fatal = false`."
        )
    for problem in problems:
        log.warning("%s", problem)


def check_externals(interpreters: list[Interpreter], settings: PythonSettings) -> list[str]:
    """At server start: each `[python] external` package must be installed in every interpreter."""
    if not settings.external:
        return []
    problems = []
    for interpreter in interpreters:
        try:
            versions = host_versions(interpreter, list(settings.external))
        except EnvironmentBuildError as exc:
            problems.append(str(exc))
            continue
        for name, version in versions.items():
            if version is None:
                problems.append(
                    f"Python {interpreter.version} (`{interpreter.path}`) does not have external package `{name}` "
                    f"(`[python] external`); install it with `{interpreter.path} -m pip install {name}`, or set "
                    "`[python] externals_check_is_fatal = false` if it cannot install there."
                )
    return problems


def _content_list(names: list[str]) -> str:
    shown = ", ".join(f"`{n}`" for n in sorted(names)[:5])
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"content {shown}{more}"
