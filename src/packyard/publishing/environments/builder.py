"""Python environments for deployed content: built with uv, named by the sha256 of what decides their
contents, reused by every bundle with the same packages and Python, and reaped when nothing uses them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.exc import IntegrityError

from packyard import metrics
from packyard.config import Settings
from packyard.db import Database, utcnow
from packyard.publishing.environments import install_hints, uv
from packyard.publishing.environments.admin import EnvironmentAdmin
from packyard.publishing.environments.folder import (
    CONSTRAINTS_FILE,
    LOCK_FILE,
    OVERRIDES_FILE,
    REQUIREMENTS_FILE,
    EnvironmentFolder,
    size_of,
)
from packyard.publishing.environments.interpreters import Interpreter
from packyard.publishing.environments.plan import InstallPlan
from packyard.publishing.environments.runtime_wheels import RuntimeSet, RuntimeWheels, Wheelhouse
from packyard.publishing.errors import EnvironmentBuildError
from packyard.publishing.models import PythonEnvironment
from packyard.publishing.sandbox import Mount, Quota, Sandbox, python_mounts

# What a build's sandbox allows uv and the build backends it runs: more than an app, since compilers are hungry.
BUILD_QUOTA = Quota(memory=16 * 1024**3, processes=4096, open_files=65536, tmp=8 * 1024**3)

# Part of every key: bump it when the way environments are built changes, so old ones are not reused.
# 2: bytecode compiled at build time, since content mounts its environment read-only and could not cache it.
LAYOUT_VERSION = 2


@dataclass
class BuiltEnvironment:
    key: str | None  # None when unmanaged
    python: Path  # the python to run the app with
    path: Path | None
    cache_hit: bool
    reason: str  # one sentence for the deploy log
    timings: dict[str, float] = field(default_factory=dict)  # seconds: venv, resolve, prepare, install, total
    lock: str = ""  # `uv pip freeze` of the environment ("" when unmanaged)


class Environments(EnvironmentAdmin):
    """Builds, reuses and (through `EnvironmentAdmin`) lists and removes content environments."""

    def __init__(self, settings: Settings, db: Database, sandbox: Sandbox) -> None:
        self.settings = settings
        self.db = db
        self.sandbox = sandbox
        self.root = (settings.data_dir / "environments").resolve()
        # In the data directory, like the environments: same filesystem, so uv hardlinks instead of copying.
        self.cache = (settings.data_dir / "cache" / "uv").resolve()
        self.folder = EnvironmentFolder(self.root)
        # A cache like uv's: wheels of Packyard's runtime packages, packed from the server's own environment.
        self.runtime = RuntimeWheels((settings.data_dir / "cache" / "runtime-wheels").resolve())
        self._building: dict[str, asyncio.Lock] = {}

    def key(
        self, interpreter: Interpreter, plan: InstallPlan, runtime: RuntimeSet | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The environment's key and the inputs it hashes: everything that decides what gets installed."""
        inputs = {
            "layout": LAYOUT_VERSION,
            "python": {"version": interpreter.version, "path": str(interpreter.path)},
            "requirements": plan.requirements,
            "constraints": plan.constraints,
            "excluded": plan.excluded,
            "external": sorted(plan.external),
            "system_site_packages": bool(plan.external),
            "index_url": self.settings.index_url,
            "extra_index_urls": list(self.settings.python.extra_index_urls),
            "uv": uv.uv_version(),
            # The wheels uv may take the runtime from: a server with other runtime versions builds anew.
            "runtime_wheels": runtime.filenames if runtime is not None else [],
        }
        canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest(), inputs

    async def prepare(
        self,
        interpreter: Interpreter,
        plan: InstallPlan,
        *,
        managed: bool,
        log: Callable[[str], None],
        previous: str | None = None,
    ) -> BuiltEnvironment:
        """The environment for a plan: reused when one with the same key is ready, else built once."""
        started = time.monotonic()
        if not managed:
            return BuiltEnvironment(
                None,
                interpreter.path,
                None,
                False,
                f"Environment management is off: running on the host's Python {interpreter.version} and its packages.",
                {"total": 0.0},
            )
        runtime = await asyncio.to_thread(self.runtime.resolve, plan.runtime) if plan.runtime else None
        key, inputs = self.key(interpreter, plan, runtime)
        hit = await asyncio.to_thread(self._use, key, interpreter, plan)
        if hit is not None:
            metrics.ENV_BUILDS.labels("reused").inc()
            return self._built(key, interpreter, hit, started, waited=False)
        lock = self._building.setdefault(key, asyncio.Lock())
        try:
            if lock.locked():
                log(f"Waiting for another deploy that is building environment {key[:12]} ...")
            async with lock:
                fd = await self._lock_exclusive(key, log)
                try:
                    hit = await asyncio.to_thread(self._use, key, interpreter, plan, True)
                    if hit is not None:
                        metrics.ENV_BUILDS.labels("reused").inc()
                        return self._built(key, interpreter, hit, started, waited=True)
                    reason = await asyncio.to_thread(self._why_new, key, inputs, previous)
                    log(reason)  # before uv's lines, so the log says why it is building before it builds
                    try:
                        built = await self._build(key, inputs, interpreter, plan, runtime, log, reason, started)
                    except Exception:
                        metrics.ENV_BUILDS.labels("failed").inc()
                        raise
                    metrics.ENV_BUILDS.labels("built").inc()
                    metrics.ENV_BUILD_SECONDS.observe(time.monotonic() - started)
                    return built
                finally:
                    os.close(fd)
        finally:
            if self._building.get(key) is lock and not lock.locked():
                del self._building[key]

    def _built(
        self, key: str, interpreter: Interpreter, hit: tuple[dict[str, Any], str], started: float, waited: bool
    ) -> BuiltEnvironment:
        marker, lock = hit
        built = datetime.fromisoformat(marker["built_at"])
        if waited:
            reason = (
                f"Waited for another deploy to build environment {key[:12]} for the same packages and "
                f"Python {interpreter.version}; reusing it."
            )
        else:
            reason = (
                f"Reusing environment {key[:12]}, built {built:%Y-%m-%d %H:%M} UTC for the same packages and "
                f"Python {interpreter.version}."
            )
        path = self.folder.directory(key)
        total = round(time.monotonic() - started, 6)
        return BuiltEnvironment(key, path / "bin" / "python", path, True, reason, {"total": total}, lock)

    def _use(
        self, key: str, interpreter: Interpreter, plan: InstallPlan, have_lock: bool = False
    ) -> tuple[dict[str, Any], str] | None:
        """A ready environment's marker and lock, its row touched; None when it must be built."""
        # A shared lock keeps a removal from deleting the environment between this check and the touch,
        # and makes a half-removed or half-built environment a miss rather than a hit.
        fd = None if have_lock else self.folder.try_lock(key, shared=True)
        if fd is None and not have_lock:
            return None
        try:
            marker = self.folder.ready(key)
            if marker is None:
                return None
            lock = (self.folder.directory(key) / LOCK_FILE).read_text()
            with contextlib.suppress(IntegrityError):  # another hit recorded the missing row at the same moment
                self._touch(key, interpreter, plan, marker)
            return marker, lock
        finally:
            if fd is not None:
                os.close(fd)

    def _touch(self, key: str, interpreter: Interpreter, plan: InstallPlan, marker: dict[str, Any]) -> None:
        with self.db.session() as session:
            now = utcnow()
            touch = update(PythonEnvironment).where(PythonEnvironment.key == key).values(last_used_at=now)
            result = cast(CursorResult[Any], session.execute(touch))
            # Built by a server on another database, or the row was lost: record it.
            if result.rowcount == 0:
                session.add(
                    PythonEnvironment(
                        key=key,
                        python_version=interpreter.version,
                        python_path=str(interpreter.path),
                        packages="\n".join(plan.requirements),
                        size=size_of(self.folder.directory(key)),
                        build_seconds=float(marker.get("timings", {}).get("total", 0.0)),
                        created_at=datetime.fromisoformat(marker["built_at"]),
                        last_used_at=now,
                    )
                )

    async def _lock_exclusive(self, key: str, log: Callable[[str], None]) -> int:
        """The key's lock file, exclusively: another server process may be building the same key."""
        announced = False
        while True:
            fd = self.folder.try_lock(key)  # never blocks
            if fd is not None:
                return fd
            if not announced:
                log(f"Waiting for another process that is building environment {key[:12]} ...")
                announced = True
            await asyncio.sleep(0.1)

    async def _build(
        self,
        key: str,
        inputs: dict[str, Any],
        interpreter: Interpreter,
        plan: InstallPlan,
        runtime: RuntimeSet | None,
        log: Callable[[str], None],
        reason: str,
        started: float,
    ) -> BuiltEnvironment:
        path = self.folder.directory(key)
        if path.exists():
            log(f"Removing environment {key[:12]}, which an interrupted build left unfinished.")
            await asyncio.to_thread(shutil.rmtree, path, True)
        self.sandbox.check()
        self.root.mkdir(parents=True, exist_ok=True)
        timings: dict[str, float] = {}
        uv_exe = uv.uv_bin()
        private = self.root / f".build-{key[:16]}"  # uv's cache for a build that runs build backends
        try:
            # uv creates the environment in this folder, the only one of the data directory the build can write.
            await asyncio.to_thread(self._make_writable, path)
            venv = [uv_exe, "venv", *self._cache(self.cache), "--python", str(interpreter.path)]
            venv += ["--no-python-downloads"]
            venv += ["--system-site-packages"] if plan.external else []
            mark = time.monotonic()
            status, lines = await self._uv([*venv, str(path)], log, path, interpreter, self.cache)
            if status != 0:
                raise EnvironmentBuildError(
                    f"Creating the environment with Python {interpreter.version} (`{interpreter.path}`) failed: "
                    + "\n".join(uv.error_lines(lines))
                    + "\nCheck that this interpreter runs, or fix `[python] executables`."
                )
            timings["venv"] = round(time.monotonic() - mark, 6)
            python = path / "bin" / "python"
            (path / REQUIREMENTS_FILE).write_text("".join(f"{line}\n" for line in plan.requirements))
            install = [uv_exe, "pip", "install", "--python", str(python), "--index-url", self.settings.index_url]
            # Every start would otherwise compile every module again: the environment is read-only to content.
            install += ["--compile-bytecode"]
            for url in self.settings.python.extra_index_urls:
                install += ["--extra-index-url", url]
            install += ["-r", str(path / REQUIREMENTS_FILE)]
            wheelhouse: Wheelhouse | None = None
            if runtime is not None and runtime.dists:
                wheelhouse = await asyncio.to_thread(self.runtime.folder, runtime)
                install += ["--find-links", str(wheelhouse.path)]
            if plan.constraints:
                (path / CONSTRAINTS_FILE).write_text("".join(f"{line}\n" for line in plan.constraints))
                install += ["-c", str(path / CONSTRAINTS_FILE)]
            if plan.excluded:
                # uv's way to keep a package out of a resolution: override it with a marker that is never true.
                overrides = "".join(f'{name} ; sys_platform == "never"\n' for name in plan.excluded)
                (path / OVERRIDES_FILE).write_text(overrides)
                install += ["--override", str(path / OVERRIDES_FILE)]
            installed: list[str] = []

            def collect(line: str) -> None:
                # uv lists what it installed as ` + name==version`: in a fresh venv that is `uv pip freeze`'s
                # output, without a second uv process on the deploy's critical path.
                if line.startswith(" + "):
                    installed.append(line[3:].strip())
                log(line)

            wanted = [line for line in plan.requirements if not line.startswith("-")]
            if wanted:
                log(install_hints.installing_line(self.settings, len(wanted)))
                if runtime is not None and wheelhouse is not None:
                    log(install_hints.runtime_line(plan, runtime, wheelhouse))
                # The runtime's wheels are read from where uv is told to find them.
                extra = [Mount(wheelhouse.path)] if wheelhouse is not None else []
                # Wheels only, from uv's shared cache: no package's code runs, so none can change that cache.
                command = [*install[:3], *self._cache(self.cache), "--no-build", *install[3:]]
                status, lines = await self._uv(command, collect, path, interpreter, self.cache, extra)
                if status != 0 and any(marker in line for line in lines for marker in uv.NEEDS_BUILD):
                    # A build backend runs arbitrary code: it gets a cache of its own, thrown away afterwards,
                    # and can change nothing but the environment it builds.
                    log("A package has to be built from source; building without uv's shared cache.")
                    await asyncio.to_thread(self._make_writable, private)
                    command = [*install[:3], *self._cache(private), *install[3:]]
                    status, lines = await self._uv(command, collect, path, interpreter, private, extra)
                if status != 0:
                    missing = install_hints.missing_packages(lines)
                    asked = install_hints.who_asked(lines, missing, plan, runtime, wheelhouse, interpreter)
                    # uv found them, only with no wheel for this Python: the hint says to provide one.
                    other_python = set(missing) <= set(install_hints.without_wheels(lines))
                    hint = install_hints.certificate_hint(lines, self.settings) or (
                        await asyncio.to_thread(
                            install_hints.missing_hint,
                            self.settings,
                            self.db,
                            missing,
                            interpreter.minor if other_python else None,
                        )
                        if missing
                        else "hint: Fix the requirements (or upload the missing package to Packyard) and deploy again."
                    )
                    raise EnvironmentBuildError(
                        "Installing the bundle's requirements failed: "
                        + "\n".join([*uv.error_lines(lines), *asked, hint])
                    )
                timings.update(uv.timings(lines))
            lock = "".join(f"{line}\n" for line in sorted(installed, key=str.lower))
            (path / LOCK_FILE).write_text(lock)
            size = await asyncio.to_thread(size_of, path)
            timings["total"] = round(time.monotonic() - started, 6)
            built_at = utcnow()
            marker = {"key": key, "built_at": built_at.isoformat(), "inputs": inputs, "timings": timings}
            await asyncio.to_thread(self.folder.write_ready, key, marker)
        except BaseException:
            # Nothing half-built survives: a failed or cancelled build leaves no directory to mistake for one.
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, path, True))
            raise
        finally:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, private, True))
        await asyncio.to_thread(self._record, key, interpreter, plan, size, timings["total"], built_at)
        return BuiltEnvironment(key, python, path, False, reason, timings, lock)

    @staticmethod
    def _cache(folder: Path) -> list[str]:
        return ["--no-config", "--cache-dir", str(folder)]

    def _make_writable(self, folder: Path) -> None:
        """Create a folder a sandboxed build writes, owned by the user builds run as (the shared cache once)."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.sandbox.user is not None and folder.stat().st_uid != self.sandbox.user[0]:
            self.sandbox.give(folder)

    async def _uv(
        self,
        command: list[str],
        log: Callable[[str], None],
        path: Path,
        interpreter: Interpreter,
        cache: Path,
        extra: list[Mount] | None = None,
    ) -> tuple[int, list[str]]:
        """Run uv in a sandbox that sees the environment being built, one uv cache, the interpreter and uv."""
        await asyncio.to_thread(self._make_writable, cache)
        mounts = [Mount(path, writable=True), Mount(cache, writable=True), Mount(Path(command[0])), *(extra or [])]
        mounts += python_mounts(interpreter.path)
        netrc = os.environ.get("NETRC")
        if netrc and Path(netrc).is_file():
            mounts.append(Mount(Path(netrc)))  # index credentials: see docs/SECURITY.md
        env = uv.build_environ(self.sandbox.environ(None))
        ca_bundle = self.settings.server.ca_bundle
        if ca_bundle:
            # uv trusts its own roots, not the system's: this server's CA bundle (certificates only, read-only),
            # so that an https index of its own or behind an internal CA is trusted (docs/SECURITY.md).
            if not ca_bundle.startswith(("/etc/ssl/", "/etc/ca-certificates/", "/usr/")):  # else visible already
                mounts.append(Mount(Path(ca_bundle)))
            env["SSL_CERT_FILE"] = ca_bundle
        wrapped = self.sandbox.command(command, mounts=mounts, cwd=str(path), quota=BUILD_QUOTA)
        return await uv.run_streaming(wrapped, log, str(path), env)

    def _record(
        self, key: str, interpreter: Interpreter, plan: InstallPlan, size: int, seconds: float, built_at: datetime
    ) -> None:
        with self.db.session() as session:
            row = session.get(PythonEnvironment, key) or PythonEnvironment(key=key)
            row.python_version = interpreter.version
            row.python_path = str(interpreter.path)
            row.packages = "\n".join(plan.requirements)
            row.size = size
            row.build_seconds = seconds
            row.created_at = built_at
            row.last_used_at = built_at
            session.add(row)

    def _why_new(self, key: str, inputs: dict[str, Any], previous: str | None) -> str:
        """Why this deploy builds: nothing like it yet, or what changed since the previous bundle's environment."""
        if not previous:
            return f"No environment yet for these packages (key {key[:12]})."
        if previous == key:
            return f"Environment {key[:12]} is gone (removed, or its build never finished); building it again."
        before = self._inputs_of(previous)
        if before is None:
            return f"No environment yet for these packages (key {key[:12]}); the previous, {previous[:12]}, is gone."
        changes = []
        for name, what in (("requirements", "Requirements"), ("runtime_wheels", "Packyard's runtime wheels")):
            if name not in before:
                continue
            old, new = set(before[name]), set(inputs[name])
            if old != new:
                parts = []
                if new - old:
                    parts.append("added " + ", ".join(sorted(new - old)))
                if old - new:
                    parts.append("removed " + ", ".join(sorted(old - new)))
                changes.append(f"{what} changed since environment {previous[:12]}: {'; '.join(parts)}.")
        old_python = before.get("python", {})
        if old_python.get("version") != inputs["python"]["version"]:
            changes.append(f"Python changed from {old_python.get('version')} to {inputs['python']['version']}.")
        elif old_python.get("path") and old_python.get("path") != inputs["python"]["path"]:
            changes.append(f"Python moved from `{old_python['path']}` to `{inputs['python']['path']}`.")
        for name, what in (
            ("external", "External packages"),
            ("constraints", "Constraints"),
            ("excluded", "Packages kept out"),
            ("index_url", "The index"),
            ("extra_index_urls", "The extra indexes"),
            ("uv", "uv"),
        ):
            if name in before and before[name] != inputs[name]:
                changes.append(f"{what} changed from {_show(before[name])} to {_show(inputs[name])}.")
        if not changes:
            changes.append(f"Environment {previous[:12]} was built by an older Packyard; building a new one.")
        return " ".join(changes)

    def _inputs_of(self, key: str) -> dict[str, Any] | None:
        marker = self.folder.ready(key)
        if marker is not None:
            return marker.get("inputs", {})
        with self.db.session() as session:
            row = session.get(PythonEnvironment, key)
            if row is None:
                return None
            return {
                "requirements": row.packages.splitlines(),
                "python": {"version": row.python_version, "path": row.python_path},
            }


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "(none)" if not value else ", ".join(f"`{v}`" for v in value)
    return f"`{value}`"
