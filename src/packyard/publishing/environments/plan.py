"""A bundle's requirements file, normalized into what to install: prohibited and external packages applied."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from packyard.config import PythonSettings
from packyard.publishing.environments.interpreters import Interpreter
from packyard.publishing.errors import EnvironmentBuildError

# The file comes from a bundle, so every pattern here runs in linear time whatever the line holds: each looks one
# character behind instead of matching a run of spaces it would backtrack over (a run of 100,000 spaces took
# minutes with `\s+#` or `\s*=?\s*`), and possessive runs (`*+`) never give characters back.
# pip's rule: `#` starts a comment only at the start of a line or after whitespace (URLs keep `#egg=`).
_COMMENT = re.compile(r"(?:^|(?<=\s))#")
# Per-requirement options (`--hash=...`) follow the requirement after whitespace.
_LINE_OPTION = re.compile(r"(?<=\s)--?[A-Za-z]")
_INCLUDE = re.compile(r"(-r|--requirement|-c|--constraint)\s*+=?\s*+(\S.*)")
# Bounds on what a bundle's requirement files may hold; pip-compile's output with hashes stays far below them.
MAX_FILE_SIZE = 8 * 1024 * 1024
MAX_LINES = 100_000
MAX_LINE_LENGTH = 65_536  # characters of one logical line, continuations joined
MAX_INCLUDE_DEPTH = 20  # `-r` inside `-r` ...: deeper chains would exhaust the stack
_SHOWN = 200  # characters of a line quoted in an error


@dataclass
class InstallPlan:
    requirements: list[str]  # normalized lines to install, sorted; option lines kept verbatim
    notes: list[str]  # deploy-log lines explaining what was dropped, taken from the host or added
    external: list[str]  # names taken from the host's Python
    constraints: list[str] = field(default_factory=list)  # from `-c` files, normalized, sorted
    # Names the resolver must not install even as dependencies: prohibited ones, and externals taken from
    # the host (uv, unlike pip, never counts the host's packages as installed).
    excluded: list[str] = field(default_factory=list)
    runtime: list[str] = field(default_factory=list)  # canonical names of the packages Packyard runs the app with
    runtime_for: str = "this app"  # what they run, for messages: "the WSGI API", "rendering the notebook"
    named: list[str] = field(default_factory=list)  # canonical names the bundle's own requirements ask for
    package_file: str = "requirements.txt"  # the bundle's requirements file, for messages


@dataclass
class _Line:
    text: str
    where: str  # "line 3 of `requirements.txt`", for errors

    @property
    def shown(self) -> str:
        """The line as an error quotes it: whitespace runs collapsed and at most `_SHOWN` characters."""
        return _shown(self.text)


def plan_install(
    requirements_text: str,
    bundle_root: Path,
    runtime_packages: list[str],
    settings: PythonSettings,
    interpreter: Interpreter,
    *,
    filename: str = "requirements.txt",
    runtime_for: str = "this app",
) -> InstallPlan:
    """What to install for a bundle: its requirements normalized, with `[python] prohibited` and `external`
    applied and the packages Packyard runs the app with added."""
    root = bundle_root.resolve()
    options: list[str] = []
    requirements: list[tuple[Requirement, str]] = []  # with the line's own options (`--hash=...`)
    constraints: list[str] = []
    _read(requirements_text, filename, root, root, options, requirements, constraints, set())
    named = {canonicalize_name(r.name) for r, _ in requirements}
    notes: list[str] = []
    for package in runtime_packages:
        if canonicalize_name(package) not in named:
            requirements.append((Requirement(package), ""))
            notes.append(f"Adding {package}, which Packyard uses to run this app.")
    prohibited = {canonicalize_name(n) for n in settings.prohibited}
    external = {canonicalize_name(n) for n in settings.external}
    wanted_external = sorted({canonicalize_name(r.name) for r, _ in requirements} & external)
    host = host_versions(interpreter, wanted_external) if wanted_external else {}
    lines: set[str] = set(options)
    taken: set[str] = set()
    for req, extra in requirements:
        name = canonicalize_name(req.name)
        line = f"{_normalize(req)} {extra}".strip()
        if name in prohibited:
            notes.append(f"Not installing {name}: it is prohibited on this server (`[python] prohibited`).")
            continue
        if name in external:
            have = host.get(name)
            if have is None:
                notes.append(
                    f"{name} is an external package (`[python] external`), but the host's Python "
                    f"{interpreter.version} does not have it; installing it into the environment."
                )
            elif settings.external_version_matching and not _satisfies(req, have):
                notes.append(
                    f"Installing {_normalize(req)} instead of the host's {name} {have}, which does not satisfy it "
                    "(`[python] external_version_matching`)."
                )
            else:
                if name not in taken:
                    notes.append(f"Using {name} {have} from the host's Python (external package).")
                taken.add(name)
                continue
        lines.add(line)
    return InstallPlan(
        sorted(lines),
        notes,
        sorted(taken),
        sorted(set(constraints)),
        sorted(prohibited | taken),
        sorted({canonicalize_name(p) for p in runtime_packages}),
        runtime_for,
        sorted(named),
        filename,
    )


def host_versions(interpreter: Interpreter, names: Sequence[str]) -> dict[str, str | None]:
    """The installed version of each package in an interpreter (None when absent), asked in a subprocess."""
    script = (
        "import importlib.metadata as m, json, sys\n"
        "def v(n):\n"
        "    try:\n"
        "        return m.version(n)\n"
        "    except m.PackageNotFoundError:\n"
        "        return None\n"
        "print(json.dumps({n: v(n) for n in sys.argv[1:]}))\n"
    )
    try:
        result = subprocess.run(
            [str(interpreter.path), "-I", "-c", script, *names], capture_output=True, text=True, timeout=60, cwd="/"
        )
        found = json.loads(result.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise EnvironmentBuildError(
            f"Could not ask Python {interpreter.version} (`{interpreter.path}`) for its packages ({exc}); "
            "check that the interpreter runs."
        ) from exc
    return {n: found.get(n) for n in names}


def _read(
    text: str,
    filename: str,
    directory: Path,
    root: Path,
    options: list[str],
    requirements: list[tuple[Requirement, str]],
    constraints: list[str],
    seen: set[Path],
    constraint_file: bool = False,
    depth: int = 0,
) -> None:
    for line in _logical_lines(text, filename):
        include = _INCLUDE.fullmatch(line.text)
        if include:
            flag, target = include.groups()
            path = _inside(root, directory, target.strip(), line)
            if path in seen:
                continue  # included twice (or in a cycle): its lines are already in
            seen.add(path)
            if depth >= MAX_INCLUDE_DEPTH:
                raise EnvironmentBuildError(
                    f"{line.where.capitalize()}: `{line.shown}` goes past {MAX_INCLUDE_DEPTH} levels of files "
                    "including files, the limit; include the files from fewer levels."
                )
            if not _is_file(path):
                raise EnvironmentBuildError(
                    f"{line.where.capitalize()}: `{line.shown}` names `{_shown(target.strip())}`, which is not in "
                    "the bundle; add the file to the bundle or remove the line."
                )
            name = str(path.relative_to(root))
            is_constraint = constraint_file or flag in ("-c", "--constraint")
            included = read_bounded(path, name)
            _read(included, name, path.parent, root, options, requirements, constraints, seen, is_constraint, depth + 1)
        elif line.text.startswith(("-e", "--editable")):
            raise EnvironmentBuildError(
                f"{line.where.capitalize()}: `{line.shown}` is an editable install, which a deployed app cannot use; "
                "build a wheel of it, upload it to Packyard, and require it by name."
            )
        elif line.text.startswith("-"):
            if not constraint_file:
                options.append(line.text)
        else:
            req, extra = _parse(line)
            if constraint_file:
                constraints.append(_normalize(req))
            else:
                requirements.append((req, extra))


def read_bounded(path: Path, name: str) -> str:
    """The text of a requirements file in the bundle, refused past `MAX_FILE_SIZE` before it is read."""
    size = path.stat().st_size
    if size > MAX_FILE_SIZE:
        raise EnvironmentBuildError(
            f"`{name}` is {size:,} bytes, over the limit of {MAX_FILE_SIZE >> 20} MiB for a requirements file; "
            "list only the packages the app needs (`pip freeze` in its own virtual environment)."
        )
    return path.read_text()


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the filesystem names no file in the bundle
        return False


def _logical_lines(text: str, filename: str) -> list[_Line]:
    """Lines without comments, continuations joined, each with where it starts; refuses files past the bounds."""
    lines: list[_Line] = []
    pending: list[str] = []
    pending_length = 0
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if number > MAX_LINES:
            raise EnvironmentBuildError(
                f"`{filename}` has more than {MAX_LINES:,} lines, the limit for a requirements file; "
                "list only the packages the app needs (`pip freeze` in its own virtual environment)."
            )
        if not pending:
            start = number
        pending_length += len(raw)
        if pending_length > MAX_LINE_LENGTH:
            raise EnvironmentBuildError(
                f"Line {start} of `{filename}` is longer than {MAX_LINE_LENGTH:,} characters, the limit for one "
                f"requirement (it starts `{_shown(pending[0] if pending else raw)}`); write one requirement per "
                "line, without long runs of spaces."
            )
        if raw.endswith("\\"):
            pending.append(raw[:-1] + " ")
            continue
        pending.append(raw)
        _add_line(lines, "".join(pending), start, filename)
        pending, pending_length = [], 0
    if pending:
        _add_line(lines, "".join(pending), start, filename)
    return lines


def _add_line(lines: list[_Line], text: str, start: int, filename: str) -> None:
    comment = _COMMENT.search(text)
    text = (text if comment is None else text[: comment.start()]).strip()
    if text:
        lines.append(_Line(text, f"line {start} of `{filename}`"))


def _shown(text: str) -> str:
    text = " ".join(text.split())  # whitespace runs collapsed, so a quote shows what the line says
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _parse(line: _Line) -> tuple[Requirement, str]:
    option = _LINE_OPTION.search(line.text)
    text, extra = (
        (line.text, "") if option is None else (line.text[: option.start()].rstrip(), line.text[option.start() :])
    )
    if text.startswith((".", "/", "~", "file:")):
        raise EnvironmentBuildError(
            f"{line.where.capitalize()}: `{line.shown}` is a local path, which this server does not have; "
            "build a wheel of it, upload it to Packyard, and require it by name."
        )
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise EnvironmentBuildError(
            f"{line.where.capitalize()}: `{line.shown}` is not a requirement ({_shown(str(exc).splitlines()[0])}); "
            "write one per line, e.g. `flask==3.0.3` or `requests>=2.31`."
        ) from exc
    if req.url and req.url.startswith("file:"):
        raise EnvironmentBuildError(
            f"{line.where.capitalize()}: `{line.shown}` points at a file on the machine it was made on; "
            "build a wheel of it, upload it to Packyard, and require it by name."
        )
    return req, extra


def _inside(root: Path, directory: Path, target: str, line: _Line) -> Path:
    path = (directory / target).resolve()
    if not path.is_relative_to(root):
        raise EnvironmentBuildError(
            f"{line.where.capitalize()}: `{line.shown}` includes `{_shown(target)}`, which is outside the bundle; "
            "copy the file into the bundle and include it by a relative path."
        )
    return path


def _normalize(req: Requirement) -> str:
    req = Requirement(str(req))  # a copy: the caller's object keeps its spelling
    req.name = canonicalize_name(req.name)
    req.extras = {canonicalize_name(e) for e in req.extras}
    return str(req)


def _satisfies(req: Requirement, version: str) -> bool:
    try:
        return req.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False
