"""Content environments: built with uv from a real Packyard index, content-addressed, reused, reaped."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from packyard.config import PythonSettings, load_settings
from packyard.db import Database
from packyard.publishing.environments import uv
from packyard.publishing.environments.admin import check_externals
from packyard.publishing.environments.builder import BuiltEnvironment, Environments
from packyard.publishing.environments.folder import LOCK_FILE, READY
from packyard.publishing.environments.interpreters import Interpreter, choose_interpreter, find_interpreters
from packyard.publishing.environments.plan import InstallPlan, plan_install
from packyard.publishing.environments.runtime_wheels import RuntimeSet
from packyard.publishing.errors import EnvironmentBuildError
from packyard.publishing.models import Bundle, Content, User
from tests.conftest import BIN, Server, sandbox
from tests.dists import make_wheel

BASE = getattr(sys, "_base_executable", "") or sys.executable


@pytest.fixture(scope="module")
def published(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Server:
    dist = tmp_path_factory.mktemp("dist")
    make_wheel(dist, "alpha", "1.0", requires=["beta"])
    make_wheel(dist, "beta", "1.0")
    make_wheel(dist, "gamma", "1.0")
    make_wheel(dist, "tiny-runner", "1.0")
    make_wheel(dist, "needs-pip", "1.0", requires=["pip>=20"])  # pip is not on this index: the host has it
    make_wheel(dist, "uses-delta", "1.0", requires=["delta"])  # delta is prohibited and on no index
    server.twine(*sorted(dist.iterdir()))
    return server


@dataclass
class Setup:
    envs: Environments
    python: Interpreter
    data_dir: Path
    lines: list[str]

    def plan(self, text: str, runtime: list[str] | None = None, **python: object) -> InstallPlan:
        settings = self.envs.settings.python
        for name, value in python.items():
            setattr(settings, name, value)
        return plan_install(text, self.data_dir, runtime or [], settings, self.python)

    def prepare(self, text: str, previous: str | None = None, **kwargs: object) -> BuiltEnvironment:
        plan = self.plan(text, **kwargs)
        return asyncio.run(self.envs.prepare(self.python, plan, managed=True, log=self.lines.append, previous=previous))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
        command = [str(BIN / "packyard"), "env", *args, "--data-dir", str(self.data_dir)]
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if check and result.returncode != 0:
            raise AssertionError(f"packyard env {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result


@pytest.fixture
def setup(published: Server, tmp_path: Path) -> Iterator[Setup]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "packyard.toml").write_text(f'[python]\nindex_url = "{published.index}"\nprohibited = ["delta"]\n')
    settings = load_settings(data_dir)
    db = Database(settings.database_url)
    db.upgrade()
    try:
        yield Setup(Environments(settings, db, sandbox()), find_interpreters([BASE])[0], data_dir, [])
    finally:
        db.dispose()


def path_of(env: BuiltEnvironment) -> Path:
    assert env.path is not None
    return env.path


def run_python(env: BuiltEnvironment, code: str) -> str:
    return subprocess.run([str(env.python), "-c", code], capture_output=True, text=True, check=True).stdout


def test_build_installs_then_reuses_in_milliseconds(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    built = setup.prepare("Alpha\n")
    assert built.cache_hit is False
    assert built.reason == f"No environment yet for these packages (key {built.key[:12]})."
    assert built.path == setup.envs.root / built.key and built.python == built.path / "bin" / "python"
    assert run_python(built, "import alpha, beta; print(alpha.VERSION, beta.VERSION)") == "1.0 1.0\n"
    assert set(built.lock.split()) == {"alpha==1.0", "beta==1.0"}
    assert (built.path / LOCK_FILE).read_text() == built.lock
    assert {"venv", "resolve", "prepare", "install", "total"} <= set(built.timings)
    assert any(line.startswith("Installed 2 packages") for line in setup.lines), "uv's output was not streamed"

    # A redeploy of the same packages must not run uv at all.
    def no_uv(*args: object, **kwargs: object) -> None:
        raise AssertionError("uv ran for a cached environment")

    monkeypatch.setattr(uv, "run_streaming", no_uv)
    started = time.perf_counter()
    again = setup.prepare("alpha  # same package, other spelling\n")
    elapsed = time.perf_counter() - started
    assert again.cache_hit and again.key == built.key and again.lock == built.lock
    assert again.reason.startswith(f"Reusing environment {built.key[:12]}, built ")
    assert again.reason.endswith(f"UTC for the same packages and Python {setup.python.version}.")
    assert elapsed < 0.1, f"a cache hit took {elapsed * 1000:.1f} ms"
    [info] = setup.envs.list()
    assert info.key == built.key and info.installed == 2 and info.size > 0 and info.packages == ["alpha"]
    assert info.last_used_at > info.created_at


def test_concurrent_prepares_build_once(setup: Setup) -> None:
    other = Environments(
        setup.envs.settings, setup.envs.db, sandbox()
    )  # like a second server process: only the file lock
    plan = setup.plan("alpha==1.0\n")

    async def both() -> list[BuiltEnvironment]:
        prepare = [
            envs.prepare(setup.python, plan, managed=True, log=setup.lines.append)
            for envs in (setup.envs, setup.envs, other)
        ]
        return list(await asyncio.gather(*prepare))

    results = asyncio.run(both())
    assert len({r.key for r in results}) == 1
    assert sorted(r.cache_hit for r in results) == [False, True, True]
    assert sum(line.startswith("Creating virtual environment") for line in setup.lines) == 1
    waited = [r.reason for r in results if r.cache_hit]
    assert all(r.startswith("Waited for another deploy to build environment") for r in waited), waited


def test_changed_requirements_get_a_new_key_and_say_why(setup: Setup) -> None:
    first = setup.prepare("alpha\n")
    second = setup.prepare("alpha\ngamma==1.0\n", previous=first.key)
    assert second.key != first.key and not second.cache_hit
    assert second.reason == f"Requirements changed since environment {first.key[:12]}: added gamma==1.0."
    third = setup.prepare("gamma\n", previous=second.key)
    assert (
        third.reason
        == f"Requirements changed since environment {second.key[:12]}: added gamma; removed alpha, gamma==1.0."
    )


def test_prohibited_external_and_runtime_packages(setup: Setup) -> None:
    plan = setup.plan(
        "alpha\nDelta==1.0\npip\nneeds-pip\nuses-delta\n",
        runtime=["tiny-runner", "alpha"],
        external=["pip"],
        external_version_matching=False,
    )
    pip_version = run_python_host("import pip; print(pip.__version__)").strip()
    assert plan.notes == [
        "Adding tiny-runner, which Packyard uses to run this app.",
        "Not installing delta: it is prohibited on this server (`[python] prohibited`).",
        f"Using pip {pip_version} from the host's Python (external package).",
    ]
    assert plan.requirements == ["alpha", "needs-pip", "tiny-runner", "uses-delta"]
    assert plan.external == ["pip"] and plan.excluded == ["delta", "pip"]
    built = asyncio.run(setup.envs.prepare(setup.python, plan, managed=True, log=setup.lines.append))
    assert built.path and "include-system-site-packages = true" in (built.path / "pyvenv.cfg").read_text()
    # Neither the host's pip (a dependency of needs-pip) nor prohibited delta (of uses-delta) was installed.
    assert set(built.lock.split()) == {
        "alpha==1.0",
        "beta==1.0",
        "needs-pip==1.0",
        "tiny-runner==1.0",
        "uses-delta==1.0",
    }
    assert run_python(built, "import alpha, tiny_runner, pip; print(pip.__version__)").strip() == pip_version

    # With version matching, a host version that does not satisfy the bundle is installed instead.
    strict = setup.plan("pip>=999\n", external=["pip"], external_version_matching=True)
    assert strict.external == [] and strict.requirements == ["pip>=999"]
    assert strict.notes == [
        f"Installing pip>=999 instead of the host's pip {pip_version}, which does not satisfy it "
        "(`[python] external_version_matching`)."
    ]
    assert check_externals([setup.python], PythonSettings(external=["pip"])) == []
    [problem] = check_externals([setup.python], PythonSettings(external=["pip", "surely-not-installed"]))
    assert "does not have external package `surely-not-installed`" in problem and str(setup.python.path) in problem


def test_runtime_packages_come_from_the_servers_own_wheels(setup: Setup) -> None:
    """The index has no uvicorn: it comes from the wheels packed from this (the server's) environment."""
    built = setup.prepare("alpha\n", runtime=["uvicorn"])
    assert f"uvicorn=={importlib.metadata.version('uvicorn')}" in built.lock.split()
    runtime = setup.envs.runtime.resolve(["uvicorn"])
    assert setup.envs.folder.ready(path_of(built).name)["inputs"]["runtime_wheels"] == runtime.filenames
    # The key follows the wheels: a server whose runtime differs builds its own environment.
    plan = setup.plan("alpha\n", runtime=["uvicorn"])
    fewer = RuntimeSet(runtime.packages, runtime.dists[:-1], {})
    assert setup.envs.key(setup.python, plan, runtime)[0] == built.key
    key, inputs = setup.envs.key(setup.python, plan, fewer)
    assert key != built.key
    assert setup.envs._why_new(key, inputs, built.key) == (
        f"Packyard's runtime wheels changed since environment {built.key[:12]}: removed {runtime.dists[-1].filename}."
    )
    assert setup.prepare("alpha\n", runtime=["uvicorn"]).cache_hit


def run_python_host(code: str) -> str:
    return subprocess.run([BASE, "-c", code], capture_output=True, text=True, check=True).stdout


def test_requirement_files_are_normalized_and_bad_lines_quoted(setup: Setup) -> None:
    (setup.data_dir / "base.txt").write_text("Beta >= 1.0  # pinned below\n-c constraints.txt\n")
    (setup.data_dir / "constraints.txt").write_text("gamma<2\n")
    plan = setup.plan("--extra-index-url https://example.org/simple\nAlpha[Fast]\\\n  ==1.0\n-r base.txt\n")
    assert plan.requirements == [
        "--extra-index-url https://example.org/simple",
        "alpha[fast]==1.0",
        "beta>=1.0",
    ]
    assert plan.constraints == ["gamma<2"]
    with pytest.raises(EnvironmentBuildError, match=r"^Line 3 of `requirements.txt`: `flask=>2` is not a requirement"):
        setup.plan("alpha\n\nflask=>2\n")
    with pytest.raises(EnvironmentBuildError, match=r"`-r ../secrets.txt` includes `../secrets.txt`, which is outside"):
        setup.plan("-r ../secrets.txt\n")


def test_failed_install_reports_uv_and_leaves_nothing(setup: Setup) -> None:
    with pytest.raises(EnvironmentBuildError) as caught:
        setup.prepare("alpha\nno-such-package-here\n")
    message = str(caught.value)
    assert message.startswith("Installing the bundle's requirements failed: ")
    assert "no-such-package-here was not found in the package registry" in message
    assert not [p for p in setup.envs.root.iterdir() if not p.name.startswith(".")]


def test_interrupted_build_is_removed_and_rebuilt(setup: Setup) -> None:
    built = setup.prepare("gamma\n")
    (built.path / READY).unlink()  # as if the server died before the build finished
    setup.lines.clear()
    again = setup.prepare("gamma\n")
    assert not again.cache_hit and again.key == built.key
    assert f"Removing environment {built.key[:12]}, which an interrupted build left unfinished." in setup.lines
    assert run_python(again, "import gamma; print(gamma.VERSION)") == "1.0\n"


def test_unmanaged_runs_on_the_host(setup: Setup) -> None:
    plan = setup.plan("alpha\n")
    built = asyncio.run(setup.envs.prepare(setup.python, plan, managed=False, log=setup.lines.append))
    assert built.key is None and built.path is None and built.lock == "" and built.python == setup.python.path
    assert built.reason == (
        f"Environment management is off: running on the host's Python {setup.python.version} and its packages."
    )
    assert not setup.envs.root.exists()


def test_list_remove_prune_clear_and_cli(setup: Setup) -> None:
    used = setup.prepare("alpha\n")
    idle = setup.prepare("gamma\n")
    spare = setup.prepare("beta\n")
    with setup.envs.db.session() as session:
        user = User(guid="u-1", username="ann", role="publisher")
        session.add(user)
        session.flush()
        content = Content(guid="c-1", name="sales-api", owner_id=user.id)
        session.add(content)
        session.flush()
        bundle = Bundle(content_id=content.id, sha256="0" * 64, size=1, environment_key=used.key)
        session.add(bundle)
        session.flush()
        content.bundle_id = bundle.id
    orphan = setup.envs.root / ("f" * 64)
    orphan.mkdir()

    listing = setup.cli("list").stdout
    assert "KEY" in listing and "IN USE" in listing
    row = next(line for line in listing.splitlines() if line.startswith(used.key[:12]))
    assert setup.python.version in row and "sales-api" in row
    assert "no" in next(line for line in listing.splitlines() if line.startswith(idle.key[:12]))

    refused = setup.cli("rm", used.key[:8], check=False)
    assert refused.returncode == 1
    assert f"Environment {used.key[:12]} is in use by content `sales-api`" in refused.stderr
    assert f"`packyard env rm --force {used.key[:12]}`" in refused.stderr  # runnable as printed
    assert setup.envs.remove(spare.key[:10]) == spare.key
    assert not path_of(spare).exists()

    assert setup.envs.prune(3600) == [orphan.name]  # the others were used just now
    pruned = setup.cli("prune", "--older-than", "0s").stdout
    assert f"Removed environment {idle.key[:12]}." in pruned and "Pruned 1 environment." in pruned
    assert path_of(used).exists() and not path_of(idle).exists()

    assert setup.envs.clear_runtime_cache("3.0", dry_run=False) == []
    assert setup.envs.clear_runtime_cache(setup.python.minor, dry_run=True) == [used.key]
    assert path_of(used).exists()
    assert setup.envs.clear_runtime_cache(setup.python.version, dry_run=False) == [used.key]
    assert not path_of(used).exists() and setup.envs.list() == []


def test_find_interpreters_reports_a_bad_path() -> None:
    [found] = find_interpreters([BASE, BASE])
    assert found.path.is_absolute() and found.version == ".".join(map(str, sys.version_info[:3]))
    with pytest.raises(EnvironmentBuildError, match=r"^`/nonexistent/python3` in `\[python\] executables` is not"):
        find_interpreters(["/nonexistent/python3"])


SERVER = [Interpreter("3.11.7", Path("/opt/python/3.11.7/bin/python")), Interpreter("3.12.3", Path("/usr/bin/python3"))]
SERVER.append(Interpreter("3.11.2", Path("/usr/bin/python3.11")))


@pytest.mark.parametrize(
    ("version", "requires", "exact", "chosen"),
    [
        ("3.11.1", None, False, "3.11.7"),
        ("3.11.2", None, True, "3.11.2"),
        ("3.12.0", ">=3.10", False, "3.12.3"),
        (None, None, False, "3.12.3"),
        (None, "<3.12", False, "3.11.7"),
    ],
)
def test_choose_interpreter(version: str | None, requires: str | None, exact: bool, chosen: str) -> None:
    assert choose_interpreter(SERVER, version, requires, exact).version == chosen


@pytest.mark.parametrize(
    ("version", "requires", "exact", "message"),
    [
        (
            "3.9.1",
            None,
            False,
            "The bundle asks for Python 3.9.1 (manifest `python.version`), and this server has 3.11.2, 3.11.7 and "
            "3.12.3; install Python 3.9 on the server and list it in `[python] executables`, or deploy from Python "
            "3.11 or 3.12.",
        ),
        (
            "3.11.6",
            None,
            True,
            "The bundle asks for Python 3.11.6 (manifest `python.version`), and this server has 3.11.2, 3.11.7 and "
            "3.12.3; exact version matching is on (`[python] exact_version_matching`), so only 3.11.6 will do. "
            "Install Python 3.11.6 on the server and list it in `[python] executables`, deploy from Python 3.11.2 "
            "or 3.11.7, or turn exact matching off.",
        ),
        (
            None,
            ">=3.13",
            False,
            "The bundle requires Python >=3.13 (manifest `environment.python.requires`), and this server has 3.11.2, "
            "3.11.7 and 3.12.3; install a matching Python on the server and list it in `[python] executables`, or "
            "widen the requirement.",
        ),
        (
            "3.11",
            "=>3",
            False,
            "The bundle's Python requirement '=>3' (manifest `environment.python.requires`) is not a version "
            "specifier; write e.g. `>=3.10,<3.13` and deploy again.",
        ),
    ],
)
def test_choose_interpreter_explains_no_match(
    version: str | None, requires: str | None, exact: bool, message: str
) -> None:
    with pytest.raises(EnvironmentBuildError) as caught:
        choose_interpreter(SERVER, version, requires, exact)
    assert str(caught.value) == message
