"""pip and uv install from `/pypi/latest/simple/`, dependencies included; uv resolves from `.metadata`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Server, pip, run, uv_bin
from tests.dists import make_sdist, make_wheel


@pytest.fixture(scope="module")
def published(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Server:
    dist = tmp_path_factory.mktemp("dist")
    make_wheel(dist, "team-app", "1.0", requires=["team-lib>=2.0", "team-util"])
    make_wheel(dist, "team-lib", "1.0")
    make_wheel(dist, "team-lib", "2.0")
    make_wheel(dist, "team-lib", "3.0", requires_python=">=4")
    make_sdist(dist, "team-lib", "2.0")
    make_wheel(dist, "team-util", "0.1")
    server.twine(*sorted(dist.iterdir()))
    return server


def installed(venv: Path, env: dict[str, str]) -> dict[str, str]:
    out = run(
        [str(uv_bin()), "pip", "list", "--python", str(venv / "bin" / "python"), "--format", "freeze"], env
    ).stdout
    return dict(line.split("==") for line in out.split())


def test_pip_installs_with_dependencies(published: Server, venv: Path, client_env: dict[str, str]) -> None:
    run(pip(venv, "install", "--index-url", published.index, "team-app"), client_env)
    # team-lib 3.0 needs Python >= 4, so `data-requires-python` must steer pip to 2.0.
    assert installed(venv, client_env) == {"team-app": "1.0", "team-lib": "2.0", "team-util": "0.1"}


def test_uv_installs_with_dependencies(published: Server, venv: Path, client_env: dict[str, str]) -> None:
    run(
        [
            str(uv_bin()),
            "pip",
            "install",
            "--python",
            str(venv / "bin" / "python"),
            "--index-url",
            published.index,
            "team-app",
        ],
        client_env,
    )
    assert installed(venv, client_env) == {"team-app": "1.0", "team-lib": "2.0", "team-util": "0.1"}


def test_uv_resolves_from_metadata_without_downloading_wheels(
    published: Server, tmp_path: Path, client_env: dict[str, str]
) -> None:
    requirements = tmp_path / "requirements.in"
    requirements.write_text("team-app\n")
    mark = len(published.log())
    out = run([str(uv_bin()), "pip", "compile", "--index-url", published.index, str(requirements)], client_env).stdout
    assert "team-lib==2.0" in out and "team-util==0.1" in out
    requests = published.log()[mark:]
    assert '.whl.metadata HTTP/1.1" 200' in requests
    assert '.whl HTTP/1.1" 200' not in requests, "uv downloaded a wheel instead of reading .metadata"


def test_uv_install_is_gated_by_upload_time(published: Server, venv: Path, client_env: dict[str, str]) -> None:
    # `--exclude-newer` works only when the index serves `upload-time` (JSON api 1.1+).
    result = run(
        [
            str(uv_bin()),
            "pip",
            "install",
            "--python",
            str(venv / "bin" / "python"),
            "--index-url",
            published.index,
            "--exclude-newer",
            "2020-01-01T00:00:00Z",
            "team-util",
        ],
        client_env,
        check=False,
    )
    assert result.returncode != 0
    assert "team-util" in result.stderr
