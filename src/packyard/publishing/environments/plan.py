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

# pip's rule: `#` starts a comment only at the start of a line or after whitespace (URLs keep `#egg=`).
_COMMENT = re.compile(r"(^|\s+)#.*$")
# Per-requirement options (`--hash=...`) follow the requirement after whitespace.
_LINE_OPTIONS = re.compile(r"\s+(?=--?[A-Za-z])")
_INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=?\s*)(\S.*)$")


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
) -> None:
    for line in _logical_lines(text, filename):
        include = _INCLUDE.match(line.text)
        if include:
            flag, target = include.groups()
            path = _inside(root, directory, target.strip(), line)
            if path in seen:
                continue  # included twice (or in a cycle): its lines are already in
            seen.add(path)
            if not path.is_file():
                raise EnvironmentBuildError(
                    f"{line.where.capitalize()}: `{line.text}` names `{target.strip()}`, which is not in the bundle; "
                    "add the file to the bundle or remove the line."
                )
            name = str(path.relative_to(root))
            is_constraint = constraint_file or flag in ("-c", "--constraint")
            _read(path.read_text(), name, path.parent, root, options, requirements, constraints, seen, is_constraint)
        elif line.text.startswith(("-e", "--editable")):
            raise EnvironmentBuildError(
                f"{line.where.capitalize()}: `{line.text}` is an editable install, which a deployed app cannot use; "
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


def _logical_lines(text: str, filename: str) -> list[_Line]:
    """Lines without comments, continuations joined, each with where it starts."""
    lines: list[_Line] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        text_ = _COMMENT.sub("", pending + raw).strip()
        pending = ""
        if text_:
            lines.append(_Line(text_, f"line {start} of `{filename}`"))
    if pending.strip():
        lines.append(_Line(_COMMENT.sub("", pending).strip(), f"line {start} of `{filename}`"))
    return [line for line in lines if line.text]


def _parse(line: _Line) -> tuple[Requirement, str]:
    parts = _LINE_OPTIONS.split(line.text, maxsplit=1)
    text, extra = parts[0], parts[1] if len(parts) > 1 else ""
    if text.startswith((".", "/", "~", "file:")):
        raise EnvironmentBuildError(
            f"{line.where.capitalize()}: `{line.text}` is a local path, which this server does not have; "
            "build a wheel of it, upload it to Packyard, and require it by name."
        )
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise EnvironmentBuildError(
            f"{line.where.capitalize()}: `{line.text}` is not a requirement ({str(exc).splitlines()[0]}); "
            "write one per line, e.g. `flask==3.0.3` or `requests>=2.31`."
        ) from exc
    if req.url and req.url.startswith("file:"):
        raise EnvironmentBuildError(
            f"{line.where.capitalize()}: `{line.text}` points at a file on the machine it was made on; "
            "build a wheel of it, upload it to Packyard, and require it by name."
        )
    return req, extra


def _inside(root: Path, directory: Path, target: str, line: _Line) -> Path:
    path = (directory / target).resolve()
    if not path.is_relative_to(root):
        raise EnvironmentBuildError(
            f"{line.where.capitalize()}: `{line.text}` includes `{target}`, which is outside the bundle; "
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
