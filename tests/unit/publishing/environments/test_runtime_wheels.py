"""Runtime wheels: the server's installed runtime packages packed back into wheels that uv installs elsewhere."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import stat
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from packyard.publishing.environments import uv
from packyard.publishing.environments.runtime_wheels import (
    MARKER,
    RepackError,
    RuntimeDist,
    RuntimeWheels,
    repack,
    wheel_filename,
)
from tests.dists import installed_dist

NOTEBOOK = Path(__file__).resolve().parents[3] / "apps" / "notebook"


def fresh_venv(path: Path) -> Path:
    """A new venv on the tests' own Python, as a content environment on the server's Python would be."""
    base = getattr(sys, "_base_executable", "") or sys.executable
    subprocess.run([uv.uv_bin(), "venv", "-q", "--python", base, str(path)], check=True, env=uv.uv_environ())
    return path / "bin" / "python"


def install(python: Path, folder: Path, *packages: str) -> subprocess.CompletedProcess[str]:
    """uv installs from the folder alone: no index, so every package must come from the runtime wheels."""
    command = [uv.uv_bin(), "pip", "install", "--no-config", "--python", str(python), "--no-index"]
    command += ["--find-links", str(folder), *packages]
    return subprocess.run(command, capture_output=True, text=True, env=uv.uv_environ())


def record_of(wheel: Path) -> dict[str, str]:
    """Each member's RECORD hash, after checking that every member is listed and every hash is right."""
    with zipfile.ZipFile(wheel) as archive:
        [record] = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
        rows = dict(line.split(",", 1) for line in archive.read(record).decode().splitlines())
        assert set(rows) == set(archive.namelist())
        for name in archive.namelist():
            if name == record:
                assert rows[name] == ","
                continue
            content = archive.read(name)
            digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
            assert rows[name] == f"sha256={digest},{len(content)}", name
    return rows


def test_a_wsgi_runtime_installs_from_its_wheels_alone_and_imports(tmp_path: Path) -> None:
    wheels = RuntimeWheels(tmp_path / "runtime-wheels")
    runtime = wheels.resolve(["uvicorn", "a2wsgi"])
    names = {d.name: d for d in runtime.dists}
    assert set(names) >= {"uvicorn", "a2wsgi", "h11", "click"} and runtime.absent == {}
    assert names["h11"].via == ("uvicorn",) and names["uvicorn"].via == ()
    built = wheels.folder(runtime)
    assert built.path == tmp_path / "runtime-wheels" / runtime.digest[:16] and built.seconds is not None
    assert sorted(p.name for p in built.path.glob("*.whl")) == runtime.filenames and built.skipped == {}
    uvicorn_version = importlib.metadata.version("uvicorn")
    assert f"uvicorn-{uvicorn_version}-py3-none-any.whl" in runtime.filenames
    # uv may run as another user: everything is readable by all, and nothing is writable but by its owner.
    for path in [built.path, *built.path.iterdir()]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
    for wheel in built.path.glob("*.whl"):
        record_of(wheel)

    python = fresh_venv(tmp_path / "venv")
    result = install(python, built.path, "uvicorn", "a2wsgi")
    assert result.returncode == 0, result.stderr
    code = "import a2wsgi, uvicorn, h11; print(uvicorn.__version__)"
    shown = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == uvicorn_version
    # The console script is written by uv for the venv's Python, not copied from the server's.
    assert (tmp_path / "venv" / "bin" / "uvicorn").read_text().startswith(f"#!{tmp_path / 'venv'}")

    again = wheels.folder(runtime)
    assert again.path == built.path and again.seconds is None  # packed once


def test_notebook_runtime_renders_a_notebook_with_its_data_files(tmp_path: Path) -> None:
    """nbconvert's templates and ipykernel's kernel spec are data files outside site-packages: they come along."""
    wheels = RuntimeWheels(tmp_path / "runtime-wheels")
    built = wheels.folder(wheels.resolve(["nbconvert", "ipykernel"]))
    [nbconvert] = built.path.glob("nbconvert-*.whl")
    assert any(n.startswith(f"{nbconvert.name.split('-py3')[0]}.data/data/share/jupyter/nbconvert/templates/")
               for n in record_of(nbconvert))  # fmt: skip
    python = fresh_venv(tmp_path / "venv")
    result = install(python, built.path, "nbconvert", "ipykernel")
    assert result.returncode == 0, result.stderr
    command = [str(python), "-m", "nbconvert", "--to=html", "--execute", f"--output-dir={tmp_path / 'out'}"]
    rendered = subprocess.run([*command, str(NOTEBOOK / "analysis.ipynb")], capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr
    assert "The answer is 42" in (tmp_path / "out" / "analysis.html").read_text()


def test_the_file_name_keeps_every_original_tag(tmp_path: Path) -> None:
    tags = ["cp311-cp311-manylinux_2_26_x86_64", "cp311-cp311-manylinux_2_28_x86_64"]
    dist = installed_dist(tmp_path, "Fast.Thing", tags, {"fast_thing/__init__.py": b""})
    assert wheel_filename(dist) == "fast_thing-1.0-cp311-cp311-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl"


def test_packing_twice_gives_the_same_bytes_without_the_installers_files(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist = installed_dist(site, "thing", ["py3-none-any"], {"thing/__init__.py": b"X = 1\n"})
    runtime = RuntimeDist("thing", "1.0", wheel_filename(dist), (), dist)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = repack(runtime, tmp_path / "a"), repack(runtime, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert sorted(record_of(first)) == [
        "thing-1.0.dist-info/METADATA",
        "thing-1.0.dist-info/RECORD",
        "thing-1.0.dist-info/WHEEL",
        "thing/__init__.py",
    ]


def test_a_file_changed_since_it_was_installed_is_not_packed(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist = installed_dist(site, "thing", ["py3-none-any"], {"thing/__init__.py": b"X = 1\n"})
    (site / "thing" / "__init__.py").write_text("X = 2  # patched in place\n")
    runtime = RuntimeDist("thing", "1.0", wheel_filename(dist), (), dist)
    with pytest.raises(RepackError, match=r"thing/__init__.py` of `thing` changed since it was installed"):
        repack(runtime, tmp_path)
    assert list(tmp_path.glob("*.whl")) == [] and list(tmp_path.glob(".*.tmp")) == []


def test_a_folder_missing_a_wheel_is_packed_again(tmp_path: Path) -> None:
    wheels = RuntimeWheels(tmp_path / "runtime-wheels")
    runtime = wheels.resolve(["uvicorn"])
    built = wheels.folder(runtime)
    [h11] = built.path.glob("h11-*.whl")
    h11.unlink()
    again = wheels.folder(runtime)
    assert again.seconds is not None and h11.is_file()
    assert json.loads((built.path / MARKER).read_text())["wheels"] == runtime.filenames
    assert [p.name for p in (tmp_path / "runtime-wheels").iterdir()] == [built.path.name]  # no leftovers


def test_two_server_processes_packing_the_same_set_end_with_one_folder(tmp_path: Path) -> None:
    root = tmp_path / "runtime-wheels"
    first, second = RuntimeWheels(root), RuntimeWheels(root)  # each with its own lock, like two processes
    runtime = first.resolve(["uvicorn", "a2wsgi"])
    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda wheels: wheels.folder(runtime), [first, second]))
    assert built[0].path == built[1].path
    assert [p.name for p in root.iterdir()] == [built[0].path.name]  # no staging folder left behind
    assert sorted(p.name for p in built[0].path.glob("*.whl")) == runtime.filenames
