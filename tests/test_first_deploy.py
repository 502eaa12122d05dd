"""The first deploy to a server whose repository is empty: the real rsconnect prints the deploy log, which names the
index the environment installs from and, for each missing package, the two ways to provide it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.publishing import Publishing, copy_app, publishing_server, setup_publishing
from tests.upstreams import Peers


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Publishing]:
    with publishing_server("sqlite", tmp_path_factory.mktemp("packyard-empty")) as server:
        yield setup_publishing(server, tmp_path_factory.mktemp("publisher-home"), wheels=None)


def test_first_deploy_on_an_empty_repository_says_how_to_provide_packages(empty: Publishing, tmp_path: Path) -> None:
    app = copy_app("fastapi-app", tmp_path)
    result = empty.deploy("fastapi", app, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    index = f"{empty.server.url}/pypi/latest/simple/"
    assert f"Installing 2 requirements with uv from `{index}` (the `pypi` repository of this server)." in output
    assert (
        "hint: `fastapi` is not in the `pypi` repository, and no source of it mirrors an upstream. Provide it in "
        "one of two ways:" in output
    )
    assert (
        "  - upload it to a source the repository serves: `packyard add --source local-python-src --path <wheels>`"
        f" or `twine upload --repository-url {empty.server.url}/upload/pypi/local-python-src <files>`" in output
    )
    assert (
        '  - or mirror PyPI: set `[mirror] upstream = "https://pypi.org/simple/"` in packyard.toml (or '
        "`PACKYARD_MIRROR_UPSTREAM`) and restart the server" in output
    )
    assert "then deploy again" in output


def test_with_a_mirror_the_hint_names_its_upstream(
    module_peers: Peers, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    upstream = module_peers.pypiserver([])  # an upstream without fastapi either
    env = {"PACKYARD_MIRROR_UPSTREAM": upstream.index}
    with publishing_server("sqlite", tmp_path_factory.mktemp("packyard-mirrored"), env) as server:
        mirrored = setup_publishing(server, tmp_path_factory.mktemp("publisher-home"), wheels=None)
        result = mirrored.deploy("fastapi", copy_app("fastapi-app", tmp_path), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert (
        "hint: `fastapi` is in neither the `pypi` repository's own sources nor its mirror upstream "
        f"`{upstream.index}`. Check the name and version, or upload it to a source the repository serves: "
        "`packyard add --source local-python-src --path <wheels>`" in output
    )
    assert "`[mirror] upstream`" not in output
