"""What the deploy log says around an environment's install: which index uv installs from, where Packyard's runtime
comes from, and, when uv finds no such package there, who asked for it (the bundle's requirements or Packyard's
runtime) and the two ways to provide it (upload it, or mirror an upstream)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name
from sqlalchemy import select

from packyard.config import Settings
from packyard.db import Database
from packyard.publishing.environments.interpreters import Interpreter
from packyard.publishing.environments.plan import InstallPlan
from packyard.publishing.environments.runtime_wheels import RuntimeDist, RuntimeSet, Wheelhouse
from packyard.repository.models import Repository

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
# uv's resolver: "Because fastapi was not found in the package registry and you require fastapi==0.165.0, ..."
# Each phrase is found first and the names read from its ends: a pattern that starts with a name would try every
# position of a long run of name characters (uv echoes what the bundle asked for), in quadratic time.
_MISSING = re.compile(r" was not found in the (?:package registry|provided package locations)")
# "Because markupsafe==3.0.4 has no wheels with a matching Python ABI tag (e.g., `cp312`) and ..."
_NO_WHEEL = re.compile(r" has no wheels with a matching (?:Python ABI|Python implementation|platform)")
# "... and all versions of uvicorn depend on h11>=0.8", "flask==3.1.3 depends on werkzeug>=3.1.0"
_DEPENDS = re.compile(r" depends? on ")
_NAME_AT = re.compile(_NAME)
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def _name_before(line: str, end: int, whole_word: bool) -> str:
    """The package name that ends the word before `end` (`whole_word`: the word may go on, as in `x==1.0`)."""
    start = end
    if whole_word:
        while start > 0 and not line[start - 1].isspace():
            start -= 1
        found = _NAME_AT.match(line, start, end)
        return found.group(0) if found else ""
    while start > 0 and line[start - 1] in _NAME_CHARS:
        start -= 1
    return line[start:end].lstrip("._-")


def _names(pattern: re.Pattern[str], line: str, whole_word: bool = False) -> list[str]:
    return [name for phrase in pattern.finditer(line) if (name := _name_before(line, phrase.start(), whole_word))]


def _dependencies(text: str) -> list[tuple[str, str]]:
    """(parent, child) for each "parent depends on child" uv wrote."""
    pairs = []
    for phrase in _DEPENDS.finditer(text):
        parent = _name_before(text, phrase.start(), True)
        child = _NAME_AT.match(text, phrase.end())
        if parent and child:
            pairs.append((parent, child.group(0)))
    return pairs


_MIRROR_TYPES = ("pypi", "curated-pypi")
_PYPI = "https://pypi.org/simple/"


@dataclass(frozen=True)
class IndexRepository:
    """This server's repository that `[python] index_url` names, with its sources in priority order."""

    name: str
    local: list[str]  # sources that take uploads
    mirrors: list[str]  # upstream URLs of its mirror sources


def missing_packages(lines: list[str]) -> list[str]:
    """The names uv reports as not found in the index, or found with no wheel for the content's Python, in the
    order it reports them."""
    found: list[str] = []
    for line in lines:
        for name in _names(_MISSING, line) + _names(_NO_WHEEL, line, whole_word=True):
            if name not in found:
                found.append(name)
    return found


def certificate_hint(lines: list[str], settings: Settings) -> str:
    """The setting to change when uv refused an index's TLS certificate (`invalid peer certificate: ...`), else ""."""
    if not any("invalid peer certificate" in line for line in lines):
        return ""
    now = f"it trusts `{settings.server.ca_bundle}`" if settings.server.ca_bundle else "it trusts uv's own roots"
    return (
        f"hint: uv did not trust the index's TLS certificate ({now}): set `[server] ca_bundle` in packyard.toml to "
        "a PEM file that holds the certificate authority that issued it, restart the server, and deploy again."
    )


def without_wheels(lines: list[str]) -> list[str]:
    """The names uv found only as wheels for other Pythons or platforms."""
    return list(dict.fromkeys(name for line in lines for name in _names(_NO_WHEEL, line, whole_word=True)))


def runtime_line(plan: InstallPlan, runtime: RuntimeSet, wheelhouse: Wheelhouse) -> str:
    """The deploy log line before uv runs that says where Packyard's runtime packages may come from."""
    roots = [d.name for d in runtime.dists if not d.via]
    others = len(runtime.dists) - len(roots)
    what = ", ".join(f"`{name}`" for name in roots)
    if others:
        what += f" and {others} dependenc{'y' if others == 1 else 'ies'}"
    packed = "already packed" if wheelhouse.seconds is None else f"packed just now in {wheelhouse.seconds:.2f} s"
    line = (
        f"Packyard's runtime for {plan.runtime_for}: {what}, as {wheelhouse.count} wheels from the server's own "
        f"packages in `{wheelhouse.path}` ({packed}, "
        f"{wheelhouse.size / 2**20:.1f} MiB); uv may install them from there, so the repository needs only the "
        "bundle's own requirements."
    )
    for filename, why in sorted(wheelhouse.skipped.items()):
        line += f"\nNot offering `{filename}`: {why}; it must come from the repository."
    for name, via in sorted(runtime.absent.items()):
        line += f"\n`{name}`{_via(via)} is not installed on this server; it must come from the repository."
    return line


def who_asked(
    lines: list[str],
    names: list[str],
    plan: InstallPlan,
    runtime: RuntimeSet | None,
    wheelhouse: Wheelhouse | None,
    interpreter: Interpreter,
) -> list[str]:
    """For each package uv could not install, one line saying whether the bundle's requirements or Packyard's
    runtime asked for it, and for the runtime's, why Packyard's own wheel of it did not do."""
    text = " ".join(lines)
    no_wheel = {canonicalize_name(n) for n in without_wheels(lines)}
    parents: dict[str, list[str]] = {}
    for parent, child in _dependencies(text):
        parents.setdefault(canonicalize_name(child), []).append(canonicalize_name(parent))
    in_runtime = {d.name: d for d in runtime.dists} if runtime else {}
    absent = runtime.absent if runtime else {}
    found = []
    for name in (canonicalize_name(n) for n in names):
        by = parents.get(name, [])
        runtime_by = [p for p in by if p in in_runtime or p in plan.runtime]
        user_by = [p for p in by if p not in in_runtime and p not in plan.runtime]
        chain: tuple[str, ...] | None = None
        if name in in_runtime:
            chain = in_runtime[name].via
        elif name in absent:
            chain = absent[name]
        elif name in plan.runtime:
            chain = ()
        elif runtime_by:
            parent = runtime_by[0]
            chain = (*in_runtime[parent].via, parent) if parent in in_runtime else (parent,)
        askers = []
        if name in plan.named or user_by or chain is None:
            via = "" if name in plan.named or not user_by else _via(tuple(user_by[:1]))
            askers.append(f"your `{plan.package_file}`{via}")
        if chain is not None:
            askers.append(f"Packyard's runtime for {plan.runtime_for}{_via(chain)}")
        line = f"`{name}` is required by {' and by '.join(askers)}"
        if chain is not None:
            line += _why_not_ours(name, in_runtime, absent, wheelhouse, name in no_wheel, interpreter)
        found.append(line + ".")
    return found


def _why_not_ours(
    name: str,
    in_runtime: dict[str, RuntimeDist],
    absent: dict[str, tuple[str, ...]],
    wheelhouse: Wheelhouse | None,
    no_wheel: bool,
    interpreter: Interpreter,
) -> str:
    """Why uv did not take the runtime's package from Packyard's own wheels."""
    server = ".".join(map(str, sys.version_info[:2]))
    ours = in_runtime.get(name)
    if ours is not None and wheelhouse is not None and ours.filename in wheelhouse.skipped:
        return (
            f"; Packyard could not pack it from the server's packages ({wheelhouse.skipped[ours.filename]}), so it "
            "must come from the repository: reinstall Packyard with its dependencies, or provide it as below"
        )
    if ours is not None and no_wheel:
        return (
            f"; Packyard's own wheel of it, `{ours.filename}`, is built for Python {server}, the server's, and this "
            f"content runs Python {interpreter.version}, so it must come from the repository: provide it for Python "
            f"{interpreter.minor} as below, or deploy from Python {server}"
        )
    if ours is None and name in absent:
        return (
            f"; this server's Python {server} does not have it installed, so it must come from the repository: "
            "provide it as below"
        )
    if ours is None:
        return f"; Packyard has no wheel of it for Python {interpreter.minor}, so it must come from the repository"
    return ""


def _via(chain: tuple[str, ...]) -> str:
    return f" (via {' → '.join(f'`{name}`' for name in chain)})" if chain else ""


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


def missing_hint(settings: Settings, db: Database, names: list[str], python: str | None = None) -> str:
    """A `hint:` saying how to provide packages uv did not find (or, with `python`, found with no wheel for that
    Python), for the index environments install from."""
    shown = ", ".join(f"`{n}`" for n in names)
    are = "is" if len(names) == 1 else "are"
    lack = f"{'has' if len(names) == 1 else 'have'} no wheel for Python {python} in" if python else f"{are} not in"
    repo = _index_repository(settings, db)
    if repo is None:
        return (
            f"hint: {shown} {lack} `{settings.index_url}` (`[python] index_url`); publish "
            f"{'it' if len(names) == 1 else 'them'} there or fix the requirements, then deploy again."
        )
    source = repo.local[0] if repo.local else "<source>"
    upload = (
        f"`packyard add --source {source} --path <wheels>` or `twine upload --repository-url "
        f"{settings.server.address.rstrip('/')}/upload/pypi/{source} <files>`"
    )
    if repo.mirrors:
        upstreams = ", ".join(f"`{url}`" for url in repo.mirrors)
        where = (
            f"{lack} the `{repo.name}` repository's own sources or its mirror upstream"
            if python
            else f"{are} in neither the `{repo.name}` repository's own sources nor its mirror upstream"
        )
        return (
            f"hint: {shown} {where} {upstreams}. Check the name and version, or upload it to a source the "
            f"repository serves: {upload}; then deploy again."
        )
    return (
        f"hint: {shown} {lack} the `{repo.name}` repository, and no source of it mirrors an upstream. "
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
