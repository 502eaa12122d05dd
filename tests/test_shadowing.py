"""Uploading a project the mirror's upstream also has hides every upstream version of it (the dependency-confusion
guard); the first such upload says so where a user sees it: twine `--verbose` and `packyard add` print the
upload's response, the server log and the change log record it. A real pypiserver is the upstream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import BIN, Server, run
from tests.dists import make_wheel
from tests.upstreams import Peers, PypiServer

JSON = "application/vnd.pypi.simple.v1+json"


@dataclass
class Shadowed:
    upstream: PypiServer
    mirror: Server
    dists: Path


@pytest.fixture(scope="module")
def shadowed(module_peers: Peers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shadowed]:
    out = tmp_path_factory.mktemp("upstream-dists")
    upstream = module_peers.pypiserver(
        [
            make_wheel(out, "pub-thing", "1.0"),
            make_wheel(out, "pub-thing", "2.0"),
            make_wheel(out, "other-thing", "1.0"),
        ]
    )
    yield Shadowed(upstream, module_peers.mirror(upstream.index), tmp_path_factory.mktemp("private"))


def versions(server: Server, project: str) -> list[str]:
    response = httpx.get(f"{server.index}{project}/", headers={"Accept": JSON}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["versions"]


def twine_verbose(server: Server, wheel: Path) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(server.data_dir), "NO_COLOR": "1", "COLUMNS": "400"}
    command = [str(BIN / "twine"), "upload", "--verbose", "--non-interactive", "--disable-progress-bar"]
    command += ["--repository-url", server.upload_url, "-u", "__token__", "-p", server.upload_token, str(wheel)]
    result = run(command, env)
    return " ".join((result.stdout + result.stderr).split())  # rich wraps long lines


def warning(project: str, upstream: PypiServer) -> str:
    return (
        f"warning: `{project}` is also on the upstream of mirror source `pypi` (`{upstream.index}{project}/`) in "
        f"repository `pypi`. From now on those repositories serve only the versions in `local-python-src` and hide "
        f"every upstream version of `{project}` (the dependency-confusion guard); upload every version you need to "
        "`local-python-src`, or give your project a name the upstream does not have."
    )


def test_first_upload_of_an_upstream_name_says_it_hides_the_upstream(shadowed: Shadowed) -> None:
    mirror = shadowed.mirror
    assert versions(mirror, "pub-thing") == ["1.0", "2.0"]

    output = twine_verbose(mirror, make_wheel(shadowed.dists, "pub-thing", "0.5"))
    assert warning("pub-thing", shadowed.upstream) in output
    assert versions(mirror, "pub-thing") == ["0.5"]  # the guard, by design
    assert warning("pub-thing", shadowed.upstream).removeprefix("warning: ") in mirror.log()

    # Only the first upload of the project says so.
    again = twine_verbose(mirror, make_wheel(shadowed.dists, "pub-thing", "0.6"))
    assert "Stored pub_thing-0.6-py3-none-any.whl" in again
    assert "warning:" not in again

    engine = sa.create_engine(mirror.sql_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT project, detail FROM events WHERE kind = 'shadow'")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("pub-thing", f"pypi ({shadowed.upstream.index}pub-thing/)")]


def test_packyard_add_prints_the_warning(shadowed: Shadowed) -> None:
    mirror = shadowed.mirror
    wheel = make_wheel(shadowed.dists / "add", "other-thing", "0.1")
    result = mirror.cli("add", "--source", "local-python-src", "--path", str(wheel), "--address", mirror.url,
                        "--token", mirror.upload_token)  # fmt: skip
    assert warning("other-thing", shadowed.upstream) in " ".join(result.stderr.split())


def test_a_name_the_upstream_lacks_warns_nothing(shadowed: Shadowed) -> None:
    output = twine_verbose(shadowed.mirror, make_wheel(shadowed.dists, "only-here", "1.0"))
    assert "Stored only_here-1.0-py3-none-any.whl" in output
    assert "warning:" not in output
