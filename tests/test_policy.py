"""Block rules and curated sources, seen by pip and uv; `packyard policy test` and the dry run of `source update`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, pip, run, uv_bin
from tests.dists import make_wheel
from tests.upstreams import Peers

JSON = "application/vnd.pypi.simple.v1+json"


def uv_install(
    venv: Path, index: str, env: dict[str, str], *requirements: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    command = [str(uv_bin()), "pip", "install", "--python", str(venv / "bin" / "python"), "--index-url", index]
    return run([*command, *requirements], env, check=check)


def installed(venv: Path, env: dict[str, str]) -> dict[str, str]:
    out = run([str(uv_bin()), "pip", "list", "--python", str(venv / "bin" / "python"), "--format", "freeze"], env)
    return dict(line.split("==") for line in out.stdout.split())


def versions(server: Server, repo: str, project: str) -> list[str]:
    response = httpx.get(f"{server.url}/{repo}/latest/simple/{project}/", headers={"accept": JSON})
    return response.json()["versions"] if response.status_code == 200 else []


@pytest.fixture(scope="module")
def published(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Server:
    dist = tmp_path_factory.mktemp("dist")
    for version in ("3.2", "4.1", "4.2"):
        make_wheel(dist, "blocky", version)
    make_wheel(dist, "uses-blocky", "1.0", requires=["blocky"])
    make_wheel(dist, "doomed", "1.0")
    make_wheel(dist, "doomed", "2.0")
    server.twine(*sorted(dist.iterdir()))
    server.cli("repo", "create", "--name", "strict")
    server.cli("repo", "subscribe", "--repo", "strict", "--source", "local-python-src")
    return server


def test_blocked_versions_vanish_and_their_files_answer_403(
    published: Server, venv: Path, client_env: dict[str, str]
) -> None:
    before = httpx.get(f"{published.url}/strict/latest/simple/blocky/", headers={"accept": JSON}).json()
    newest = next(f for f in before["files"] if f["filename"].startswith("blocky-4.2"))
    out = published.cli("policy", "block", "Blocky", "--version", ">=4.2", "--repo", "strict", "--reason", "CVE-2026-1")
    assert "blocked in repository `strict`" in out.stdout
    published.wait_synced()

    assert versions(published, "strict", "blocky") == ["3.2", "4.1"]
    assert versions(published, "pypi", "blocky") == ["3.2", "4.1", "4.2"]  # the rule names one repository
    file_url = f"{published.url}/strict/latest/simple/blocky/{newest['url']}"
    response = httpx.get(file_url)
    assert response.status_code == 403
    assert "`blocky` 4.2 is blocked in repository `strict`: CVE-2026-1 (rule" in response.text
    assert httpx.get(f"{published.url}/pypi/latest/simple/blocky/{newest['url']}").status_code == 200

    # A resolver backtracks to the newest allowed version, for a direct and for a transitive requirement.
    uv_install(venv, f"{published.url}/strict/latest/simple/", client_env, "uses-blocky")
    assert installed(venv, client_env) == {"uses-blocky": "1.0", "blocky": "4.1"}
    failed = run(
        pip(venv, "install", "--index-url", f"{published.url}/strict/latest/simple/", "blocky==4.2"),
        client_env,
        check=False,
    )
    assert failed.returncode != 0


def test_server_wide_rule_and_policy_test_explains(published: Server) -> None:
    published.cli("policy", "block", "doomed", "--reason", "abandoned; use `hopeful`")
    published.wait_synced()
    for repo in ("pypi", "strict"):
        assert versions(published, repo, "doomed") == []

    verdict = published.cli("policy", "test", "doomed==1.0", "--repo", "strict", check=False)
    assert verdict.returncode == 1
    assert "blocked by rule" in verdict.stdout and "abandoned; use `hopeful`" in verdict.stdout
    assert "doomed==1.0 is NOT served by repository `strict`" in verdict.stdout
    served = published.cli("policy", "test", "blocky==3.2", "--repo", "strict")
    assert "blocky==3.2 is served by repository `strict`" in served.stdout
    missing = published.cli("policy", "test", "no-such-thing==1.0", check=False)
    assert missing.returncode == 1 and "is not served" in missing.stdout

    listed = published.cli("policy", "list").stdout
    assert "doomed" in listed and "abandoned" in listed
    rule_id = next(line.split()[0] for line in listed.splitlines() if " doomed " in f" {line} ")
    published.cli("policy", "remove", rule_id)
    published.wait_synced()
    assert versions(published, "pypi", "doomed") == ["1.0", "2.0"]


def test_bad_policy_input_is_refused_and_nothing_is_stored(published: Server) -> None:
    before = published.cli("policy", "list").stdout
    for args, message in [
        (["policy", "block", "x", "--version", "<<4", "--reason", "r"], "is not valid"),
        (["policy", "block", "x", "--reason", "  "], "Give a `--reason`"),
        (["policy", "block", "x", "--repo", "nope", "--reason", "r"], "Repository `nope` does not exist"),
        (["policy", "remove", "9999"], "No block rule 9999"),
        (["policy", "test", "blocky"], "is not NAME==VERSION"),
    ]:
        result = published.cli(*args, check=False)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
    assert published.cli("policy", "list").stdout == before


def test_delete_hides_a_release_from_latest(published: Server) -> None:
    published.cli("delete", "--source", "local-python-src", "--project", "blocky", "--version", "3.2")
    published.wait_synced()
    assert "3.2" not in versions(published, "pypi", "blocky")
    result = published.cli(
        "delete", "--source", "local-python-src", "--project", "blocky", "--version", "3.2", check=False
    )
    assert result.returncode == 1 and "No `blocky` version `3.2`" in result.stderr


# -- curated sources (need an upstream) -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def curated(module_peers: Peers, tmp_path_factory: pytest.TempPathFactory) -> Server:
    dist = tmp_path_factory.mktemp("upstream-dist")
    make_wheel(dist, "web-frame", "1.0", requires=["templ>=2"])
    make_wheel(dist, "web-frame", "2.0", requires=["templ>=2"])
    make_wheel(dist, "templ", "1.0")
    make_wheel(dist, "templ", "2.0")
    make_wheel(dist, "templ", "2.1")
    make_wheel(dist, "unvetted", "1.0")
    upstream = module_peers.packyard(sorted(dist.iterdir()))
    mirror = module_peers.mirror(upstream.index)
    mirror.cli("source", "create", "--name", "approved", "--type", "curated-pypi")
    mirror.cli("repo", "create", "--name", "approved")
    mirror.cli("repo", "subscribe", "--repo", "approved", "--source", "approved")
    return mirror


def test_curated_dry_run_then_commit(curated: Server, tmp_path: Path, venv: Path, client_env: dict[str, str]) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# what the team may use\nweb-frame>=1.0\n")
    dry = curated.cli("source", "update", "--source", "approved", "--file", str(requirements))
    assert "Dry run: 2 changes, nothing applied" in dry.stdout
    assert "web-frame" in dry.stdout and "templ" in dry.stdout
    curated.wait_synced()
    index = f"{curated.url}/approved/latest/simple/"
    assert httpx.get(f"{index}web-frame/").status_code == 404  # nothing applied

    curated.cli("source", "update", "--source", "approved", "--file", str(requirements), "--commit")
    curated.wait_synced()
    assert versions(curated, "approved", "web-frame") == ["1.0", "2.0"]
    assert versions(curated, "approved", "templ") == ["2.1"]  # a dependency: only the version resolved
    assert httpx.get(f"{index}unvetted/").status_code == 404
    assert versions(curated, "pypi", "unvetted") == ["1.0"]  # the full mirror still has it
    uv_install(venv, index, client_env, "web-frame")
    assert installed(venv, client_env) == {"web-frame": "2.0", "templ": "2.1"}
    refused = uv_install(venv, index, client_env, "unvetted", check=False)
    assert refused.returncode != 0

    again = curated.cli("source", "update", "--source", "approved", "--file", str(requirements))
    assert "already matches" in again.stdout
    test = curated.cli("policy", "test", "templ==1.0", "--repo", "approved", check=False)
    assert test.returncode == 1 and "allowlist has `templ` ==2.1, not 1.0" in test.stdout


def test_curated_update_refuses_bad_input(curated: Server, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("web-frame >>> 1\n")
    result = curated.cli("source", "update", "--source", "approved", "--file", str(bad), check=False)
    assert result.returncode == 1 and "is not a requirement" in result.stderr
    result = curated.cli("source", "update", "--source", "local-python-src", "--file", str(bad), check=False)
    assert result.returncode == 1 and "only `curated-pypi` sources" in result.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    result = curated.cli("source", "update", "--source", "approved", "--file", str(empty), check=False)
    assert result.returncode == 1 and "lists no projects" in result.stderr
