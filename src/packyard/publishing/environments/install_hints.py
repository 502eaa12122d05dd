"""What the deploy log says around an environment's install: which index uv installs from, and, when uv finds no
such package there, the two ways to provide it (upload it, or mirror an upstream)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select

from packyard.config import Settings
from packyard.db import Database
from packyard.repository.models import Repository

# uv's resolver: "Because fastapi was not found in the package registry and you require fastapi==0.165.0, ..."
# The phrase is found first and the name read backwards from it: a pattern that starts with the name would try
# every position of a long run of name characters (uv echoes what the bundle asked for), in quadratic time.
_MISSING = re.compile(r" was not found in the (?:package registry|provided package locations)")
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_MIRROR_TYPES = ("pypi", "curated-pypi")
_PYPI = "https://pypi.org/simple/"


@dataclass(frozen=True)
class IndexRepository:
    """This server's repository that `[python] index_url` names, with its sources in priority order."""

    name: str
    local: list[str]  # sources that take uploads
    mirrors: list[str]  # upstream URLs of its mirror sources


def missing_packages(lines: list[str]) -> list[str]:
    """The names uv reports as not found in the index, in the order it reports them."""
    found: list[str] = []
    for line in lines:
        for phrase in _MISSING.finditer(line):
            start = end = phrase.start()
            while start > 0 and line[start - 1] in _NAME_CHARS:
                start -= 1
            name = line[start:end].lstrip("._-")
            if name and name not in found:
                found.append(name)
    return found


def installing_line(settings: Settings, count: int) -> str:
    """The deploy log line before uv runs: what it installs, and from where."""
    where = (
        "`[python] index_url`"
        if settings.python.index_url
        else f"the `{_repo_name(settings.index_url)}` repository of this server"
    )
    line = f"Installing {count} requirement{'s' if count != 1 else ''} with uv from `{settings.index_url}` ({where})"
    extra = settings.python.extra_index_urls
    if extra:
        line += ", and from " + ", ".join(f"`{url}`" for url in extra) + " (`[python] extra_index_urls`)"
    return line + "."


def missing_hint(settings: Settings, db: Database, names: list[str]) -> str:
    """A `hint:` saying how to provide packages uv did not find, for the index environments install from."""
    shown = ", ".join(f"`{n}`" for n in names)
    are = "is" if len(names) == 1 else "are"
    repo = _index_repository(settings, db)
    if repo is None:
        return (
            f"hint: {shown} {are} not in `{settings.index_url}` (`[python] index_url`); publish "
            f"{'it' if len(names) == 1 else 'them'} there or fix the requirements, then deploy again."
        )
    source = repo.local[0] if repo.local else "<source>"
    upload = (
        f"`packyard add --source {source} --path <wheels>` or `twine upload --repository-url "
        f"{settings.server.address.rstrip('/')}/upload/pypi/{source} <files>`"
    )
    if repo.mirrors:
        upstreams = ", ".join(f"`{url}`" for url in repo.mirrors)
        return (
            f"hint: {shown} {are} in neither the `{repo.name}` repository's own sources nor its mirror upstream "
            f"{upstreams}. Check the name and version, or upload it to a source the repository serves: {upload}; "
            "then deploy again."
        )
    return (
        f"hint: {shown} {are} not in the `{repo.name}` repository, and no source of it mirrors an upstream. "
        "Provide it in one of two ways:\n"
        f"  - upload it to a source the repository serves: {upload}\n"
        f'  - or mirror PyPI: set `[mirror] upstream = "{_PYPI}"` in packyard.toml (or '
        "`PACKYARD_MIRROR_UPSTREAM`) and restart the server\n"
        "then deploy again."
    )


def _repo_name(index_url: str) -> str:
    return urlsplit(index_url).path.strip("/").split("/")[0]


def _index_repository(settings: Settings, db: Database) -> IndexRepository | None:
    """The repository of this server the index URL names; None when the index is elsewhere or unknown."""
    if settings.python.index_url:
        own = settings.server.address.rstrip("/") + "/"
        if not settings.python.index_url.startswith(own):
            return None
    name = _repo_name(settings.index_url)
    with db.session() as session:
        repo = session.scalar(select(Repository).where(Repository.name == name))
        if repo is None:
            return None
        sources = [sub.source for sub in repo.subscriptions]
        local = [s.name for s in sources if s.type not in _MIRROR_TYPES]
        mirrors = [s.upstream or settings.mirror.upstream for s in sources if s.type in _MIRROR_TYPES]
        return IndexRepository(repo.name, local, [m for m in mirrors if m] or [])
