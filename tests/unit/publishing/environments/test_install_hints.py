"""Who asked for a package uv could not install: read from uv's own output (uv runs for real on wheels the test
makes) and from the runtime the server would offer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from packyard.config import PythonSettings
from packyard.publishing.environments import uv
from packyard.publishing.environments.install_hints import missing_packages, who_asked
from packyard.publishing.environments.interpreters import Interpreter
from packyard.publishing.environments.plan import InstallPlan, plan_install
from packyard.publishing.environments.runtime_wheels import RuntimeDist, RuntimeSet, Wheelhouse, wheel_filename
from tests.dists import installed_dist, make_wheel

PYTHON = Interpreter("3.11.7", Path(getattr(sys, "_base_executable", "") or sys.executable))
SERVER = f"{sys.version_info[0]}.{sys.version_info[1]}"


def plan(tmp_path: Path, requirements: str) -> InstallPlan:
    return plan_install(requirements, tmp_path, ["runner"], PythonSettings(), PYTHON, runtime_for="the WSGI API")


def uv_fails(tmp_path: Path, wheels: dict[str, list[str]], plan: InstallPlan) -> list[str]:
    """uv's output resolving the plan from these wheels alone (a runtime folder with no index behind it)."""
    folder = tmp_path / "wheels"
    for name, requires in wheels.items():
        make_wheel(folder, name, "1.0", requires=requires)
    command = [uv.uv_bin(), "pip", "compile", "--no-config", "--no-index", "--find-links", str(folder)]
    command += ["--python-version", PYTHON.minor, "-"]
    requirements = "".join(f"{line}\n" for line in plan.requirements)
    result = subprocess.run(command, input=requirements, capture_output=True, text=True, env=uv.uv_environ())
    assert result.returncode != 0, result.stdout
    return result.stderr.splitlines()


def dist(tmp_path: Path, name: str, via: tuple[str, ...]) -> RuntimeDist:
    installed = installed_dist(tmp_path / "site", name, ["py3-none-any"], {f"{name}/__init__.py": b""})
    return RuntimeDist(name, "1.0", wheel_filename(installed), via, installed)


def asked(lines: list[str], plan: InstallPlan, runtime: RuntimeSet, skipped: dict[str, str] | None = None) -> list[str]:
    wheelhouse = Wheelhouse(Path("/data/cache/runtime-wheels/x"), 1, 1, None, skipped or {})
    return who_asked(lines, missing_packages(lines), plan, runtime, wheelhouse, PYTHON)


def test_a_dependency_the_server_has_not_installed_is_the_runtimes(tmp_path: Path) -> None:
    wanted = plan(tmp_path, "")
    lines = uv_fails(tmp_path, {"runner": ["runner-dep>=1"]}, wanted)
    runtime = RuntimeSet(("runner",), (dist(tmp_path, "runner", ()),), {"runner-dep": ("runner",)})
    assert asked(lines, wanted, runtime) == [
        f"`runner-dep` is required by Packyard's runtime for the WSGI API (via `runner`); this server's Python "
        f"{SERVER} does not have it installed, so it must come from the repository: provide it as below."
    ]


def test_a_runtime_package_that_could_not_be_packed_says_why(tmp_path: Path) -> None:
    wanted = plan(tmp_path, "")
    lines = uv_fails(tmp_path, {"runner": ["runner-dep>=1"]}, wanted)
    runner, dep = dist(tmp_path, "runner", ()), dist(tmp_path, "runner-dep", ("runner",))
    why = "`/srv/site/runner_dep/__init__.py` of `runner-dep` changed since it was installed (its sha256 differs)"
    assert asked(lines, wanted, RuntimeSet(("runner",), (runner, dep), {}), {dep.filename: why}) == [
        f"`runner-dep` is required by Packyard's runtime for the WSGI API (via `runner`); Packyard could not pack "
        f"it from the server's packages ({why}), so it must come from the repository: reinstall Packyard with its "
        "dependencies, or provide it as below."
    ]


def test_a_package_the_requirements_and_the_runtime_both_need_names_both(tmp_path: Path) -> None:
    wanted = plan(tmp_path, "user-lib\nshared-dep>=1\n")
    lines = uv_fails(tmp_path, {"runner": ["shared-dep>=1"], "user-lib": ["shared-dep>=1"]}, wanted)
    runtime = RuntimeSet(("runner",), (dist(tmp_path, "runner", ()),), {"shared-dep": ("runner",)})
    assert asked(lines, wanted, runtime) == [
        "`shared-dep` is required by your `requirements.txt` and by Packyard's runtime for the WSGI API (via "
        f"`runner`); this server's Python {SERVER} does not have it installed, so it must come from the repository: "
        "provide it as below."
    ]


def test_a_dependency_of_a_requirement_is_the_requirements(tmp_path: Path) -> None:
    wanted = plan(tmp_path, "user-lib\n")
    lines = uv_fails(tmp_path, {"runner": [], "user-lib": ["lib-dep>=1"]}, wanted)
    runtime = RuntimeSet(("runner",), (dist(tmp_path, "runner", ()),), {})
    assert asked(lines, wanted, runtime) == ["`lib-dep` is required by your `requirements.txt` (via `user-lib`)."]
