"""CRAN-like R repositories: R source packages uploaded to a `local-r` source and installed by the real R
(`r-base-core`) with `install.packages(repos = ...)` from a public repository, an authenticated one (the seed's
netrc plus `.curlrc` holding `--netrc-file`, which the `curl` download method reads) and a dated snapshot."""

from __future__ import annotations

import gzip
import io
import os
import ssl
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, run
from tests.dists import make_wheel
from tests.tls import TestCA
from tests.upstreams import backdate

TODAY = datetime.now(UTC).date()
PAST = TODAY - timedelta(days=5)


def description(name: str, version: str, imports: str = "") -> str:
    lines = [
        f"Package: {name}",
        "Type: Package",
        f"Title: The {name} Test Package",
        f"Version: {version}",
        "Authors@R: person('Pat', 'Yard', email = 'pat@example.com', role = c('aut', 'cre'))",
        "Maintainer: Pat Yard <pat@example.com>",
        "Description: A tiny package for Packyard's tests,",
        "    written over two lines.",
        "License: MIT + file LICENSE",
        "Depends: R (>= 3.5)",
        "NeedsCompilation: no",
    ]
    if imports:
        lines.append(f"Imports: {imports}")
    return "\n".join(lines) + "\n"


def r_package(folder: Path, name: str, version: str, imports: str = "", **extra: bytes) -> Path:
    """`name_version.tar.gz` as `R CMD build` lays it out: DESCRIPTION, NAMESPACE, R/ with one function."""
    function = f"{name.replace('.', '_')}_version"
    members = {
        f"{name}/DESCRIPTION": description(name, version, imports).encode(),
        f"{name}/NAMESPACE": f"export({function})\n".encode()
        + (f"importFrom({imports}, {imports.replace('.', '_')}_version)\n".encode() if imports else b""),
        f"{name}/LICENSE": b"YEAR: 2026\nCOPYRIGHT HOLDER: Pat Yard\n",
        f"{name}/R/{function}.R": f'{function} <- function() "{version}"\n'.encode(),
        **extra,
    }
    path = folder / f"{name}_{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def upload(server: Server, path: Path, source: str = "local-r-src", token: str | None = None) -> httpx.Response:
    token = token or server.token("--scope", "sources:write", "--sources", source)
    with path.open("rb") as f:
        return httpx.post(
            f"{server.url}/upload/r/{source}",
            auth=("__token__", token),
            files={"content": (path.name, f, "application/octet-stream")},
            timeout=30,
            verify=ssl.create_default_context(cafile=server.ca_pem) if server.ca_pem else True,
        )


def rscript(code: str, home: Path, check: bool = True, env: dict[str, str] | None = None) -> str:
    """Run R with a library and HOME of its own (HOME holds the `.curlrc` when a test writes one)."""
    lib = home / "lib"
    lib.mkdir(exist_ok=True)
    base = {"PATH": os.environ["PATH"], "HOME": str(home), "R_LIBS_USER": str(lib), "LANG": "C.UTF-8"}
    result = run(["Rscript", "--vanilla", "-e", code], {**base, **(env or {})}, check=check)
    return result.stdout + result.stderr


def install(repo_url: str, home: Path, package: str = "pyard.app", env: dict[str, str] | None = None) -> str:
    """`install.packages` as a user's `.Rprofile` would set it up, then load the package and call it."""
    function = f"{package.replace('.', '_')}_version"
    lib = home / "lib"
    code = (
        'options(download.file.method = "curl"); '
        f'install.packages("{package}", repos = c(PACKYARD = "{repo_url}"), lib = "{lib}", quiet = TRUE); '
        f'library("{package}", lib.loc = "{lib}"); cat("VERSION", {function}(), "\\n"); '
        f'cat("BASE", as.character(packageVersion("pyard.base", lib.loc = "{lib}")), "\\n")'
    )
    return rscript(code, home, env=env)


@pytest.fixture(scope="module")
def cran(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """A `local-r` source served by a public `cran` and an authenticated `cran-private` repository, holding
    pyard.base 1.0-1 (five days ago) and 1.0-2 (today), and pyard.app 0.9 (five days ago) and 1.0 (today)."""
    server.cli("source", "create", "--name", "local-r-src", "--type", "local-r")
    server.cli("repo", "create", "--name", "cran", "--description", "R packages")
    server.cli("repo", "subscribe", "--repo", "cran", "--source", "local-r-src")
    server.cli("repo", "create", "--name", "cran-private", "--authenticated")
    server.cli("repo", "subscribe", "--repo", "cran-private", "--source", "local-r-src")
    server.wait_synced()
    dist = tmp_path_factory.mktemp("r-dist")
    old = [r_package(dist, "pyard.base", "1.0-1"), r_package(dist, "pyard.app", "0.9", imports="pyard.base")]
    new = [r_package(dist, "pyard.base", "1.0-2"), r_package(dist, "pyard.app", "1.0", imports="pyard.base")]
    for path in old + new:
        response = upload(server, path)
        assert response.status_code == 200, response.text
    for path in old:
        backdate(server, path.name, datetime(PAST.year, PAST.month, PAST.day, 12, tzinfo=UTC))
    return server


def test_packages_index_lists_the_newest_versions(cran: Server) -> None:
    text = httpx.get(f"{cran.url}/cran/latest/src/contrib/PACKAGES").text
    records = [dict(line.split(": ", 1) for line in rec.splitlines()) for rec in text.strip().split("\n\n")]
    assert [(r["Package"], r["Version"]) for r in records] == [("pyard.app", "1.0"), ("pyard.base", "1.0-2")]
    app = records[0]
    assert app["Imports"] == "pyard.base" and app["Depends"] == "R (>= 3.5)"
    assert app["License"] == "MIT + file LICENSE" and app["NeedsCompilation"] == "no" and len(app["MD5sum"]) == 32
    repos = {r["name"]: r["type"] for r in httpx.get(f"{cran.url}/__api__/repos").json()}
    assert repos["cran"] == "r" and repos["pypi"] == "python"
    gz = httpx.get(f"{cran.url}/cran/latest/src/contrib/PACKAGES.gz")
    assert gzip.decompress(gz.content).decode() == text
    assert httpx.get(f"{cran.url}/cran/latest/src/contrib/PACKAGES.rds").status_code == 404


def test_available_packages_reads_the_index(cran: Server, tmp_path: Path) -> None:
    code = (
        f'ap <- available.packages(repos = "{cran.url}/cran/latest"); '
        'cat(paste(ap[, "Package"], ap[, "Version"], ap[, "Imports"]), sep = "\\n")'
    )
    out = rscript(code, tmp_path)
    assert "pyard.app 1.0 pyard.base" in out and "pyard.base 1.0-2 NA" in out


def test_older_versions_are_under_archive(cran: Server) -> None:
    base = f"{cran.url}/cran/latest/src/contrib"
    assert httpx.get(f"{base}/Archive/pyard.base/pyard.base_1.0-1.tar.gz").status_code == 200
    current = httpx.get(f"{base}/pyard.base_1.0-2.tar.gz")
    assert current.status_code == 200 and current.headers["content-type"] == "application/octet-stream"
    moved = httpx.get(f"{base}/pyard.base_1.0-1.tar.gz")
    assert moved.status_code == 404 and "Archive/pyard.base/pyard.base_1.0-1.tar.gz" in moved.text
    assert httpx.get(f"{base}/Archive/pyard.base/pyard.base_1.0-2.tar.gz").status_code == 404


def test_install_packages_from_a_public_repository(cran: Server, tmp_path: Path) -> None:
    out = install(f"{cran.url}/cran/latest", tmp_path)
    assert "VERSION 1.0" in out and "BASE 1.0.2" in out


def test_install_packages_from_a_snapshot_date(cran: Server, tmp_path: Path) -> None:
    """As of five days ago, pyard.app 0.9 and pyard.base 1.0-1; today's uploads are not used."""
    text = httpx.get(f"{cran.url}/cran/{PAST}/src/contrib/PACKAGES").text
    assert "Version: 0.9" in text and "Version: 1.0-1" in text and "Version: 1.0-2" not in text
    out = install(f"{cran.url}/cran/{PAST}", tmp_path)
    assert "VERSION 0.9" in out and "BASE 1.0.1" in out


def test_authenticated_repository_with_the_seeds_netrc_and_curlrc(cran: Server, tmp_path: Path) -> None:
    url = f"{cran.url}/cran-private/latest"
    anonymous = httpx.get(f"{url}/src/contrib/PACKAGES")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
    # Without credentials R gets no index: it stops (curl saves the 401's text, which is no PACKAGES file).
    refused = rscript(
        f'options(download.file.method = "curl"); ap <- available.packages(repos = "{url}"); cat("N", nrow(ap))',
        tmp_path,
        check=False,
    )
    assert "N 2" not in refused
    # The seed's setup: a netrc whose `machine` is the host alone, and `~/.curlrc` holding `--netrc-file`.
    netrc = tmp_path / "netrc"
    token = cran.token("--scope", "repos:read", "--repos", "cran-private")
    netrc.write_text(f"machine 127.0.0.1\nlogin __token__\npassword {token}\n")
    (tmp_path / ".curlrc").write_text(f"--netrc-file {netrc}\n")
    out = install(url, tmp_path)
    assert "VERSION 1.0" in out and "BASE 1.0.2" in out


def test_identical_reupload_is_fine_and_other_bytes_are_refused(cran: Server, tmp_path: Path) -> None:
    path = r_package(tmp_path, "pyard.same", "1.0")
    assert upload(cran, path).status_code == 200
    again = upload(cran, path)
    assert again.status_code == 200 and "identical" in again.text
    elsewhere = tmp_path / "rebuilt"
    elsewhere.mkdir()
    other = r_package(elsewhere, "pyard.same", "1.0", imports="pyard.base")  # same name, other bytes
    refused = upload(cran, other)
    assert refused.status_code == 400 and refused.text.startswith("File already exists")


def _bad(tmp_path: Path, filename: str, members: dict[str, bytes], kind: bytes = tarfile.REGTYPE) -> Path:
    path = tmp_path / filename
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


GOOD = description("pyard.bad", "1.0").encode()


@pytest.mark.parametrize(
    ("filename", "members", "message"),
    [
        ("pyard.bad-1.0.tar.gz", {"pyard.bad/DESCRIPTION": GOOD}, "is not an R source package filename"),
        ("1bad_1.0.tar.gz", {"1bad/DESCRIPTION": GOOD}, "is not an R source package filename"),
        ("pyard.bad_1.tar.gz", {"pyard.bad/DESCRIPTION": GOOD}, "is not an R source package filename"),
        ("pyard.bad_1.0.tar.gz", {"pyard.bad/R/f.R": b"f <- 1\n"}, "has no `pyard.bad/DESCRIPTION`"),
        ("pyard.bad_1.0.tar.gz", {"pyard.bad/DESCRIPTION": b"Title: x\n"}, "has no `Package:` field"),
        ("pyard.bad_1.0.tar.gz", {"pyard.bad/DESCRIPTION": GOOD.replace(b"1.0", b"2.0")}, "filename says `1.0`"),
        (
            "pyard.bad_1.0.tar.gz",
            {"pyard.bad/DESCRIPTION": GOOD.replace(b"Package: pyard.bad", b"Package: other")},
            "says `Package: other`",
        ),
        (
            "pyard.bad_1.0.tar.gz",
            {"pyard.bad/DESCRIPTION": GOOD.replace(b"Version: 1.0", b"Version: 1.0a")},
            "invalid `Version: 1.0a`",
        ),
        ("pyard.bad_1.0.tar.gz", {"pyard.bad/DESCRIPTION": b"  leading continuation\n"}, "continuation line"),
        ("pyard.bad_1.0.tar.gz", {"pyard.bad/DESCRIPTION": b"no colon here\n"}, "is not `Field: value`"),
        (
            "pyard.bad_1.0.tar.gz",
            {"pyard.bad/DESCRIPTION": GOOD, "pyard.bad/../../etc/x": b"x"},
            "an absolute path, a `..`",
        ),
        ("pyard.bad_1.0.tar.gz", {"pyard.bad/DESCRIPTION": GOOD, "/etc/x": b"x"}, "an absolute path, a `..`"),
        ("pyard.bad_1.0.tar.gz", {"pyard.bad/DESCRIPTION": GOOD, "other/x": b"x"}, "outside the folder"),
    ],
)
def test_bad_uploads_say_what_is_wrong(
    cran: Server, tmp_path: Path, filename: str, members: dict[str, bytes], message: str
) -> None:
    response = upload(cran, _bad(tmp_path, filename, members))
    assert response.status_code == 400 and message in response.text, response.text
    assert "pyard.bad" not in httpx.get(f"{cran.url}/cran/latest/src/contrib/PACKAGES").text


def test_hostile_archives_are_refused(cran: Server, tmp_path: Path) -> None:
    link = tmp_path / "pyard.link_1.0.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        data = description("pyard.link", "1.0").encode()
        info = tarfile.TarInfo("pyard.link/DESCRIPTION")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        sym = tarfile.TarInfo("pyard.link/R/passwd")
        sym.type, sym.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(sym)
    assert "a link or device" in upload(cran, link).text
    notgz = tmp_path / "pyard.junk_1.0.tar.gz"
    notgz.write_bytes(b"not a tarball")
    assert "not a valid gzip-compressed tar archive" in upload(cran, notgz).text
    # A pax header claiming gigabytes is refused before it is read (bounded_tar.py).
    pax = tmp_path / "pyard.pax_1.0.tar.gz"
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, 1 << 31
    raw = io.BytesIO(header.tobuf(format=tarfile.USTAR_FORMAT) + b"\0" * 1024)
    pax.write_bytes(gzip.compress(raw.getvalue()))
    refused = upload(cran, pax)
    assert refused.status_code == 400 and "pax extended header" in refused.text


def test_sources_and_repositories_keep_r_and_python_apart(cran: Server, tmp_path: Path) -> None:
    mixed = cran.cli("repo", "subscribe", "--repo", "cran", "--source", "local-python-src", check=False)
    assert mixed.returncode != 0 and "R and Python packages are served by separate repositories" in mixed.stderr
    wrong = upload(cran, r_package(tmp_path, "pyard.py", "1.0"), source="local-python-src")
    assert wrong.status_code == 400 and "not `local-r`" in wrong.text
    r_token = cran.token("--scope", "sources:write", "--sources", "local-r-src")
    twine = cran.twine(make_wheel(tmp_path, "pyard-wheel", "1.0"), source="local-r-src", token=r_token, check=False)
    said = " ".join((twine.stdout + twine.stderr).split())  # twine wraps its lines
    assert twine.returncode != 0 and "source for R packages; upload Python distributions to a" in said
    scoped = upload(cran, r_package(tmp_path, "pyard.scope", "1.0"), source="local-r-src", token=cran.upload_token)
    assert scoped.status_code == 403
    anonymous = httpx.post(f"{cran.url}/upload/r/local-r-src", files={"content": ("x_1.0.tar.gz", b"x")})
    assert anonymous.status_code == 401


def test_packyard_add_and_rspm_upload_r_packages(cran: Server, tmp_path: Path) -> None:
    token = cran.token("--scope", "sources:write", "--sources", "local-r-src")
    folder = tmp_path / "built"
    folder.mkdir()
    first = r_package(folder, "pyard.cli", "1.0")
    added = cran.cli("add", "--source", "local-r-src", "--path", str(folder), "--address", cran.url, "--token", token)
    assert added.stdout.strip() == "1 uploaded, 0 skipped, 0 failed", added.stderr
    # The remote CLI from `/__api__/download`, stdlib only: the same folder is skipped, a new version goes up.
    rspm = tmp_path / "rspm"
    rspm.write_bytes(httpx.get(f"{cran.url}/__api__/download", headers={"Authorization": f"Bearer {token}"}).content)
    r_package(folder, "pyard.cli", "1.1")
    env = {"PATH": os.environ["PATH"], "PACKAGEMANAGER_ADDRESS": cran.url, "PACKAGEMANAGER_TOKEN": token}
    out = run(["python3", str(rspm), "add", "--source=local-r-src", f"--path={folder}"], env)
    assert out.stdout.strip() == "1 uploaded, 1 skipped, 0 failed", out.stderr
    text = httpx.get(f"{cran.url}/cran/latest/src/contrib/PACKAGES").text
    assert "Package: pyard.cli\nVersion: 1.1" in text
    listed = httpx.get(f"{cran.url}/cran/latest/src/contrib/Archive/pyard.cli/{first.name}")
    assert listed.status_code == 200
    # A bad package fails before anything is sent, naming what is wrong.
    bad = _bad(tmp_path, "pyard.cli_2.0.tar.gz", {"pyard.cli/R/x.R": b"x <- 1\n"})
    refused = cran.cli(
        "add", "--source", "local-r-src", "--path", str(bad), "--address", cran.url, "--token", token, check=False
    )
    assert refused.returncode == 1 and "has no `pyard.cli/DESCRIPTION`" in refused.stderr


def test_package_pages_show_description_fields(cran: Server) -> None:
    listing = httpx.get(f"{cran.url}/repos/cran/")
    assert listing.status_code == 200
    assert "pyard.app" in listing.text and "The pyard.app Test Package" in listing.text
    assert "pyard.app" in httpx.get(f"{cran.url}/repos/cran/", params={"q": "pyard.app"}).text
    page = httpx.get(f"{cran.url}/repos/cran/packages/pyard.app/")
    assert page.status_code == 200, page.text
    for shown in (
        "A tiny package for Packyard&#39;s tests, written over two lines.",
        "<dt>Imports</dt><dd>pyard.base</dd>",
        "<dt>Depends</dt><dd>R (&gt;= 3.5)</dd>",
        "<dt>License</dt><dd>MIT + file LICENSE</dd>",
        "<dt>Maintainer</dt><dd>Pat Yard &lt;pat@example.com&gt;</dd>",
        f"install.packages(&#34;pyard.app&#34;, repos = c(PACKYARD = &#34;{cran.url}/cran/latest&#34;))",
        "/cran/latest/src/contrib/Archive/pyard.app/pyard.app_0.9.tar.gz",
    ):
        assert shown in page.text, shown
    assert httpx.get(f"{cran.url}/repos/cran/packages/nothere/").status_code == 404
    setup = httpx.get(f"{cran.url}/repos/cran/setup", params={"package": "pyard.app"})
    assert "Set up R for cran" in setup.text
    assert f"options(repos = c(CRAN = &#34;{cran.url}/cran/latest&#34;))" in setup.text


def test_yank_and_delete_take_an_r_version_out_of_packages(cran: Server, tmp_path: Path) -> None:
    for version in ("1.0", "1.1"):
        assert upload(cran, r_package(tmp_path, "pyard.yank", version)).status_code == 200
    base = f"{cran.url}/cran/latest/src/contrib"
    assert "Package: pyard.yank\nVersion: 1.1" in httpx.get(f"{base}/PACKAGES").text
    cran.cli("yank", "--source", "local-r-src", "--project", "pyard.yank", "--version", "1.1", "--reason", "broken")
    text = httpx.get(f"{base}/PACKAGES").text
    assert "Package: pyard.yank\nVersion: 1.0" in text and "Package: pyard.yank\nVersion: 1.1" not in text
    assert httpx.get(f"{base}/Archive/pyard.yank/pyard.yank_1.1.tar.gz").status_code == 200
    cran.cli("delete", "--source", "local-r-src", "--project", "pyard.yank", "--version", "1.0")
    assert "pyard.yank" not in httpx.get(f"{base}/PACKAGES").text


def test_install_packages_over_https_trusts_the_ca_given_to_curl(
    https_server: Server, test_ca: TestCA, tmp_path: Path
) -> None:
    """R against an HTTPS Packyard whose certificate an internal CA signed: refused until `CURL_CA_BUNDLE` names
    the CA, as the setup page says."""
    https_server.cli("source", "create", "--name", "local-r-src", "--type", "local-r")
    https_server.cli("repo", "create", "--name", "cran")
    https_server.cli("repo", "subscribe", "--repo", "cran", "--source", "local-r-src")
    https_server.wait_synced()
    for path in (
        r_package(tmp_path, "pyard.base", "1.0-2"),
        r_package(tmp_path, "pyard.app", "1.0", imports="pyard.base"),
    ):
        assert upload(https_server, path).status_code == 200
    repo = f"{https_server.url}/cran/latest"
    assert repo.startswith("https://")
    (tmp_path / "untrusting").mkdir()
    refused = rscript(f'available.packages(repos = c(P = "{repo}"))', tmp_path / "untrusting", check=False)
    assert "pyard.app" not in refused and ("certificate" in refused.lower() or "unable to access" in refused)
    out = install(repo, tmp_path, env={"CURL_CA_BUNDLE": str(test_ca.pem)})
    assert "VERSION 1.0" in out and "BASE 1.0.2" in out
