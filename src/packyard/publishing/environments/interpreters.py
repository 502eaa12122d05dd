"""The Python interpreters content can run on: configured or discovered, and the one a bundle asks for."""

from __future__ import annotations

import functools
import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from packyard.publishing.environments.uv import uv_bin, uv_environ
from packyard.publishing.errors import EnvironmentBuildError

# Asks an interpreter for its version and the real interpreter behind it: a pyenv shim or a venv's python
# is a different program from the one that runs, and only the real one is stable across cwd and venvs.
_PROBE = (
    "import json, platform, sys; "
    "base = getattr(sys, '_base_executable', '') or sys.executable; "
    "print(json.dumps([platform.python_version(), base if sys.prefix != sys.base_prefix else sys.executable]))"
)


@dataclass(frozen=True)
class Interpreter:
    version: str  # "3.11.7"
    path: Path  # a real interpreter (not a venv's), absolute

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def find_interpreters(executables: list[str]) -> list[Interpreter]:
    """The configured interpreters (`[python] executables`), else those uv finds plus the server's own."""
    return list(_find(tuple(executables)))


@functools.cache
def _find(executables: tuple[str, ...]) -> tuple[Interpreter, ...]:
    # Cached per process: interpreters change only when an admin installs one, which needs a restart anyway.
    if executables:
        found = []
        for path in executables:
            probed = _probe([path])[0]
            if isinstance(probed, str):
                raise EnvironmentBuildError(
                    f"`{path}` in `[python] executables` is not a Python interpreter this server can run "
                    f"({probed}); fix the path or remove it from the list."
                )
            found.append(probed)
        return _dedupe(found)
    own = Path(getattr(sys, "_base_executable", "") or sys.executable)
    found = [Interpreter(platform.python_version(), own.absolute())]
    found += [p for p in _probe(_uv_pythons()) if isinstance(p, Interpreter)]
    return _dedupe(found)


def _uv_pythons() -> list[str]:
    """Paths of the interpreters installed on this host, as `uv python list` finds them (no downloads)."""
    command = [uv_bin(), "python", "list", "--only-installed", "--output-format", "json", "--no-config"]
    try:
        # From `/`, so no project's `.python-version` or `.venv` narrows what is found.
        result = subprocess.run(command, capture_output=True, text=True, env=uv_environ(), timeout=60, cwd="/")
        entries = json.loads(result.stdout or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return []  # discovery is best effort; the server's own interpreter is always there
    return [e["path"] for e in entries if isinstance(e, dict) and e.get("path")]


def _probe(paths: list[str]) -> list[Interpreter | str]:
    """Each path's interpreter, or why it could not be run; all are started at once."""
    started: list[subprocess.Popen[str] | str] = []
    for path in paths:
        try:
            started.append(
                subprocess.Popen(
                    [path, "-I", "-c", _PROBE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/"
                )
            )
        except OSError as exc:
            started.append(exc.strerror or str(exc))
    results: list[Interpreter | str] = []
    for process in started:
        if isinstance(process, str):
            results.append(process)
            continue
        try:
            stdout, stderr = process.communicate(timeout=30)
            version, real = json.loads(stdout)
            Version(version)
            results.append(Interpreter(version, Path(real).absolute()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            results.append("it did not answer within 30 seconds")
        except (ValueError, TypeError, InvalidVersion):
            detail = (stderr or "").strip().splitlines()
            results.append(detail[-1] if detail else f"exit status {process.returncode}")
    return results


def _dedupe(found: list[Interpreter]) -> tuple[Interpreter, ...]:
    seen: dict[Path, Interpreter] = {}
    for interpreter in found:
        seen.setdefault(interpreter.path.resolve(), interpreter)
    return tuple(sorted(seen.values(), key=lambda i: Version(i.version), reverse=True))


def choose_interpreter(
    available: list[Interpreter], version: str | None, requires: str | None, exact: bool
) -> Interpreter:
    """The interpreter for a bundle: same major.minor as `version` (exact x.y.z when `exact`), satisfying
    `requires`, highest patch first."""
    specifier = _specifier(requires)
    wanted = _version(version) if version else None
    allowed = [i for i in available if specifier.contains(Version(i.version), prereleases=True)]
    if wanted is None:
        matches = allowed
    elif exact and len(wanted.release) >= 3:
        matches = [i for i in allowed if Version(i.version).release[:3] == wanted.release[:3]]
    else:
        matches = [i for i in allowed if Version(i.version).release[:2] == wanted.release[:2]]
    if matches:
        return max(matches, key=lambda i: Version(i.version))
    raise EnvironmentBuildError(_no_match(available, allowed, version, wanted, requires, exact))


def _specifier(requires: str | None) -> SpecifierSet:
    try:
        return SpecifierSet(requires or "")
    except InvalidSpecifier as exc:
        raise EnvironmentBuildError(
            f"The bundle's Python requirement {requires!r} (manifest `environment.python.requires`) is not a "
            "version specifier; write e.g. `>=3.10,<3.13` and deploy again."
        ) from exc


def _version(version: str) -> Version:
    try:
        parsed = Version(version)
    except InvalidVersion:
        parsed = None
    if parsed is None or len(parsed.release) < 2:
        raise EnvironmentBuildError(
            f"The bundle's Python version {version!r} (manifest `python.version`) is not a version like `3.11.7`; "
            "fix the manifest and deploy again."
        )
    return parsed


def _no_match(
    available: list[Interpreter],
    allowed: list[Interpreter],
    version: str | None,
    wanted: Version | None,
    requires: str | None,
    exact: bool,
) -> str:
    has = _join(sorted({i.version for i in available}, key=Version)) or "no Python at all"
    minors = sorted({i.minor for i in (allowed or available)}, key=Version)
    if wanted is None:
        return (
            f"The bundle requires Python {requires} (manifest `environment.python.requires`), and this server has "
            f"{has}; install a matching Python on the server and list it in `[python] executables`, "
            "or widen the requirement."
        )
    minor = ".".join(str(p) for p in wanted.release[:2])
    asked = f"The bundle asks for Python {version} (manifest `python.version`)"
    if requires:
        asked += f" and requires {requires} (manifest `environment.python.requires`)"
    same_minor = [i for i in allowed if i.minor == minor]
    if exact and same_minor and len(wanted.release) >= 3:
        near = _join(sorted({i.version for i in same_minor}, key=Version), "or")
        return (
            f"{asked}, and this server has {has}; exact version matching is on (`[python] exact_version_matching`), "
            f"so only {version} will do. Install Python {version} on the server and list it in "
            f"`[python] executables`, deploy from Python {near}, or turn exact matching off."
        )
    if any(i.minor == minor for i in available) and requires:
        ours = _join(sorted({i.version for i in available if i.minor == minor}, key=Version))
        return (
            f"{asked}, and this server's Python {ours} does not satisfy {requires}; "
            "fix the requirement or the version in the manifest and deploy again."
        )
    target = version if exact else minor
    instead = f", or deploy from Python {_join(minors, 'or')}" if minors else ""
    return (
        f"{asked}, and this server has {has}; install Python {target} on the server and list it in "
        f"`[python] executables`{instead}."
    )


def _join(items: list[str], word: str = "and") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}" if items else ""
