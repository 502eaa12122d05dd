"""Curated sources: an allowlist built from a requirements file, resolved with uv against the upstream."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.changelog.events import record
from packyard.repository.errors import RepositoryError
from packyard.repository.index import indexer
from packyard.repository.models import CuratedEntry, Source
from packyard.repository.names import normalize
from packyard.repository.services import get_source


@dataclass(frozen=True)
class Change:
    project: str
    old: str | None  # None: not on the allowlist before
    new: str | None  # None: dropped from it

    @property
    def symbol(self) -> str:
        return "+" if self.old is None else "-" if self.new is None else "~"


def read_requirements(path: Path) -> dict[str, str]:
    """Listed projects and their specifiers; `-r`/`--index-url` style option lines are not allowed."""
    listed: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise RepositoryError(
                f"{path}:{number}: {line!r} is not a requirement ({exc}); write `name` or `name<specifier>`."
            ) from exc
        name = normalize(req.name)
        listed[name] = ",".join(s for s in (listed.get(name, ""), str(req.specifier)) if s)
    if not listed:
        raise RepositoryError(f"{path} lists no projects; write one requirement per line, e.g. `requests>=2.31`.")
    return listed


def resolve(path: Path, upstream: str, snapshot: date | None, uv: str) -> dict[str, str]:
    """The allowlist for a requirements file: each listed project with its specifier, capped at the version
    the resolution picked, and every dependency pinned to the versions resolved (for any platform)."""
    listed = read_requirements(path)
    command = [uv, "pip", "compile", "--universal", "--no-header", "--no-annotate", "--quiet", "--no-config"]
    command += ["--index-url", upstream, str(path)]
    if snapshot is not None:
        command += ["--exclude-newer", (snapshot + timedelta(days=1)).isoformat()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        raise RepositoryError(
            f"uv could not resolve {path} against {upstream}: {' '.join(detail[-3:]) or 'no output'}; "
            "check the requirements and that the upstream is reachable."
        )
    pins: dict[str, set[str]] = {}
    for line in result.stdout.splitlines():
        line = line.split(";", 1)[0].strip()
        if "==" in line and not line.startswith(("#", "-")):
            name, version = line.split("==", 1)
            pins.setdefault(normalize(name.split("[", 1)[0]), set()).add(version.strip())
    wanted: dict[str, str] = {}
    for name, versions in pins.items():
        if name in listed:
            newest = max(versions, key=_sort_key)
            wanted[name] = ",".join(s for s in (listed[name], f"<={newest}") if s)
        else:
            wanted[name] = " | ".join(f"=={v}" for v in sorted(versions, key=_sort_key))
    for name, specifier in listed.items():
        wanted.setdefault(name, specifier)  # listed but not needed on any platform uv knows of
    return wanted


def _sort_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def get_curated(session: Session, name: str) -> Source:
    source = get_source(session, name)
    if source.type != "curated-pypi":
        raise RepositoryError(
            f"Source `{name}` is of type `{source.type}`; only `curated-pypi` sources take a requirements file."
        )
    return source


def plan(session: Session, source: Source, wanted: dict[str, str]) -> list[Change]:
    current = dict(
        session.execute(select(CuratedEntry.project, CuratedEntry.specifier).where(CuratedEntry.source_id == source.id))
        .tuples()
        .all()
    )
    changes = [Change(n, current.get(n), s) for n, s in wanted.items() if current.get(n) != s]
    changes += [Change(n, s, None) for n, s in current.items() if n not in wanted]
    return sorted(changes, key=lambda c: c.project)


def apply(session: Session, source: Source, changes: list[Change]) -> None:
    for change in changes:
        entry = session.get(CuratedEntry, (source.id, change.project))
        if change.new is None:
            if entry is not None:
                session.delete(entry)
        elif entry is None:
            session.add(CuratedEntry(source_id=source.id, project=change.project, specifier=change.new))
        else:
            entry.specifier = change.new
        session.flush()
        serial = record(session, "curate", source_id=source.id, project=change.project, detail=change.new or "")
        indexer.source_changed(session, source.id, change.project, serial, new_project=True)
