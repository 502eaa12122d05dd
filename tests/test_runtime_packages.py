"""Packyard brings its own runtime (issue 13): a Flask API, a Dash app and a notebook deploy with the real rsconnect
from a repository that holds only their own requirements, since uvicorn, a2wsgi, nbconvert and ipykernel come from
the server's own packages. When a package is missing, the deploy log says who asked for it: the bundle's
requirements, or Packyard's runtime (then why the server's own wheel of it did not do)."""

from __future__ import annotations

import glob
import html
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dists import make_wheel
from tests.publishing import Publishing, copy_app, publishing_server, setup_publishing

BASE = getattr(sys, "_base_executable", "") or sys.executable
RUNTIME = ("uvicorn", "a2wsgi", "h11", "nbconvert", "ipykernel", "pyzmq", "tornado")


def other_python() -> tuple[str, str] | None:
    """A CPython of another minor version than the server's (pyenv's, or one on PATH), and its version."""
    server = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.1[0-9].*/bin/python3.1[0-9]")), reverse=True)
    candidates += [found for minor in (13, 12, 10) if (found := shutil.which(f"python3.{minor}"))]
    for path in candidates:
        probe = subprocess.run([path, "-c", "import platform; print(platform.python_version())"],
                               capture_output=True, text=True)  # fmt: skip
        version = probe.stdout.strip()
        if probe.returncode == 0 and not version.startswith(f"{server}.") and version.startswith("3.1"):
            return path, version
    return None


OTHER = other_python()


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Publishing]:
    # The server's own Python for the apps, and another one for content that asks for it.
    pythons = {"PACKYARD_PYTHON_EXECUTABLES": f"{BASE},{OTHER[0]}"} if OTHER else {}
    with publishing_server("sqlite", tmp_path_factory.mktemp("packyard-bare"), pythons) as server:
        yield setup_publishing(server, tmp_path_factory.mktemp("publisher-home"), wheels="bare")


def deploy(pub: Publishing, kind: str, app: Path, *args: str) -> tuple[str, str]:
    """Deploy; the content's guid and rsconnect's output (with the deploy task's log)."""
    result = pub.deploy(kind, app, *args)
    output = result.stdout + result.stderr
    assert "Deployment completed successfully." in output, output
    guids = re.findall(r"/content/([0-9a-f-]{36})/", output)  # file deploys keep no record in the folder
    assert guids, output
    return guids[-1], output


def test_the_repository_holds_only_the_apps_own_requirements(pub: Publishing) -> None:
    def listed(name: str) -> bool:
        return httpx.get(f"{pub.server.index}{name}/", timeout=30).status_code == 200

    assert listed("flask") and listed("dash")
    assert not any(listed(name) for name in RUNTIME)


def test_a_flask_api_deploys_with_the_servers_own_uvicorn_and_a2wsgi(pub: Publishing, tmp_path: Path) -> None:
    guid, output = deploy(pub, "api", copy_app("flask-app", tmp_path))
    assert (
        "Packyard's runtime for the WSGI API: `a2wsgi`, `uvicorn` and 2 dependencies, as 4 wheels from the "
        "server's own packages in `" in output
    )
    for name in ("uvicorn", "a2wsgi", "h11"):
        assert f" + {name}=={importlib.metadata.version(name)}" in output, output  # uv's list of what it installed
    assert pub.api("GET", f"/v1/content/{guid}").json()["app_mode"] == "python-api"
    assert pub.get(f"/content/{guid}/").json() == {"app": "flask", "greeting": None, "other": None}
    # Builds may run as another user: the folders are 0755 and the wheels 0644 whatever the server's umask.
    [folder] = (pub.server.data_dir / "cache" / "runtime-wheels").iterdir()
    assert folder.stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o644}
    assert json.loads((folder / "wheels.json").read_text())["skipped"] == {}


def test_a_dash_app_deploys_and_answers_a_callback(pub: Publishing, tmp_path: Path) -> None:
    guid, output = deploy(pub, "dash", copy_app("dash-app", tmp_path))
    assert "Packyard's runtime for the Dash app: `a2wsgi`, `uvicorn` and 2 dependencies" in output
    assert pub.get(f"/content/{guid}/").status_code == 200
    update = {
        "output": "greeting.children",
        "outputs": {"id": "greeting", "property": "children"},
        "inputs": [{"id": "name", "property": "value", "value": "runtime"}],
        "changedPropIds": ["name.value"],
    }
    response = httpx.post(f"{pub.server.url}/content/{guid}/_dash-update-component", json=update,
                          headers=pub.headers, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["response"]["greeting"]["children"] == "Hello, runtime!"


def test_a_notebook_is_rendered_on_the_server_with_its_own_nbconvert(pub: Publishing, tmp_path: Path) -> None:
    app = copy_app("notebook", tmp_path)
    guid, output = deploy(pub, "notebook", app / "analysis.ipynb")
    assert re.search(
        r"Packyard's runtime for rendering the notebook: `ipykernel`, `nbconvert` and \d+ dependencies", output
    )
    assert f" + nbconvert=={importlib.metadata.version('nbconvert')}" in output
    assert pub.api("GET", f"/v1/content/{guid}").json()["app_mode"] == "jupyter-static"  # not rendered by rsconnect
    page = pub.get(f"/content/{guid}/")
    assert "The answer is 42" in page.text


@pytest.mark.parametrize(
    ("requirement", "message"),
    [
        ("never-uploaded==1.0", "`never-uploaded` is required by your `requirements.txt`."),
        ("acme-tools==1.0", "`acme-internal` is required by your `requirements.txt` (via `acme-tools`)."),
    ],
)
def test_a_package_the_requirements_ask_for_is_named_as_theirs(
    pub: Publishing, tmp_path: Path, requirement: str, message: str
) -> None:
    # An internal package uploaded without the package it depends on.
    pub.server.twine(make_wheel(tmp_path / "dist", "acme-tools", "1.0", requires=["acme-internal>=1"]), check=False)
    app = copy_app("flask-app", tmp_path)
    (app / "requirements.txt").write_text(f"flask==3.1.3\n{requirement}\n")
    result = pub.deploy("api", app, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert message in output, output
    assert "Packyard's runtime for the WSGI API (via" not in output


@pytest.mark.skipif(OTHER is None, reason="needs a CPython of another minor version than the tests' own")
def test_a_runtime_package_with_no_wheel_for_the_contents_python_is_named_as_the_runtimes(
    pub: Publishing, tmp_path: Path
) -> None:
    """The server's compiled wheels (pyzmq, markupsafe, ...) are for its own Python: content on another Python must
    find those in its repository, and when the repository lacks them the message says the runtime asked."""
    assert OTHER is not None
    version = OTHER[1]
    minor = ".".join(version.split(".")[:2])
    server = f"{sys.version_info[0]}.{sys.version_info[1]}"
    app = copy_app("notebook", tmp_path)
    result = pub.deploy("notebook", app / "analysis.ipynb", "--override-python-version", version, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"Python {version} (" in output  # the content runs on the other Python
    found = re.search(
        r"`([a-z0-9-]+)` is required by Packyard's runtime for rendering the notebook \(via `(?:nbconvert|ipykernel)`"
        r"[^)]*\); Packyard's own wheel of it, `([^`]+)`, is built for Python (\S+), the server's, and this content "
        r"runs Python (\S+), so it must come from the repository: provide it for Python (\S+) as below, or deploy "
        r"from Python (\S+)\.",
        output,
    )
    assert found, output
    name, wheel = found[1], found[2]
    assert wheel.startswith(name.replace("-", "_") + "-") and f"-cp{server.replace('.', '')}-" in wheel
    assert found.groups()[2:] == (server, version, minor, server)
    assert f"hint: `{name}` has no wheel for Python {minor} in the `pypi` repository" in output
    assert "required by your `requirements.txt`" not in output


# A notebook that attacks while the server renders it: the rendered page shows what it could do.
HOSTILE_CELL = """\
import json, os, sys
def attempt(action):
    try:
        action()
        return "done"
    except BaseException as exc:
        return type(exc).__name__
def names(pid):
    try:
        text = open(f"/proc/{{pid}}/environ", "rb").read().decode("latin-1")
    except OSError:
        return []
    return [line.split("=", 1)[0] for line in text.split("\\0")]
data = {data!r}
report = {{
    "secret": attempt(lambda: open(os.path.join(data, "token-secret")).read()),
    "database": attempt(lambda: open(os.path.join(data, "packyard.db"), "rb").read(16)),
    "plant": attempt(lambda: open(os.path.join(data, "planted"), "w").write("x")),
    "environment": attempt(lambda: open(os.path.join(sys.prefix, "pyvenv.cfg"), "a").write("# x")),
    "server_variables": sorted(name for pid in os.listdir("/proc") if pid.isdigit()
                               for name in names(pid) if name.startswith("PACKYARD_")),
    "uid": os.getuid(),
}}
print("HOSTILE-REPORT " + json.dumps(report))
"""


def test_a_hostile_notebook_reaches_nothing_of_the_server_while_it_renders(pub: Publishing, tmp_path: Path) -> None:
    app = copy_app("notebook", tmp_path)
    notebook = json.loads((app / "analysis.ipynb").read_text())
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "id": "cell-hostile",
            "source": HOSTILE_CELL.format(data=str(pub.server.data_dir))}  # fmt: skip
    notebook["cells"].append(cell)
    (app / "analysis.ipynb").write_text(json.dumps(notebook))
    guid, _ = deploy(pub, "notebook", app / "analysis.ipynb")
    page = html.unescape(pub.get(f"/content/{guid}/").text)
    found = re.search(r"HOSTILE-REPORT (\{.*?\})\s*<", page)
    assert found, page[-2000:]
    report = json.loads(found.group(1))
    assert {report[name] for name in ("secret", "database", "plant", "environment")} <= {
        "FileNotFoundError", "PermissionError", "OSError"
    }, report  # fmt: skip
    assert report["server_variables"] == []
    assert not (pub.server.data_dir / "planted").exists()
    if os.geteuid() == 0:
        assert report["uid"] != 0
