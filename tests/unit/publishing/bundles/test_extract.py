"""Bundles: real tar.gz archives built in tmp_path, unpacked with extract_bundle, manifests parsed (no server)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from packyard.publishing.bundles.extract import MAX_PACKAGE_FILE_SIZE, extract_bundle, read_requirements
from packyard.publishing.bundles.manifest import API_APP_MODES, APP_MODES, PYTHON_APP_MODES, Manifest, parse_manifest
from packyard.publishing.errors import BundleError

# connect-api.md 6.4: what `rsconnect deploy fastapi` 1.32.0 sent.
FASTAPI_MANIFEST = {
    "version": 1,
    "locale": "en_US.UTF-8",
    "metadata": {"appmode": "python-fastapi", "entrypoint": "app"},
    "python": {
        "version": "3.11.7",
        "package_manager": {"name": "pip", "version": "23.2.1", "package_file": "requirements.txt"},
    },
    "files": {
        "requirements.txt": {"checksum": "526dbb2138ccf84c78f43fdec5d680db"},
        "app.py": {"checksum": "5647db9edcda680633b047e580198291"},
    },
}
FASTAPI_UV_MANIFEST = {
    "version": 1,
    "locale": "en_US.UTF-8",
    "metadata": {"appmode": "python-fastapi", "entrypoint": "app"},
    "python": {
        "version": "3.11.9",
        "package_manager": {"name": "uv", "version": "23.2.1", "package_file": "requirements.txt", "allow_uv": True},
    },
    "environment": {
        "python": {"requires": "==3.11.9"},
        "image": "ghcr.io/acme/py:3.11",
        "environment_management": {"python": False},
    },
    "files": {"requirements.txt": {"checksum": "0"}, "app.py": {"checksum": "0"}},
}
HTML_MANIFEST = {
    "version": 1,
    "metadata": {"appmode": "static", "primary_html": "index.html", "entrypoint": "index.html"},
    "files": {"css/site.css": {"checksum": "0"}, "index.html": {"checksum": "0"}},
}
APP_PY = b"from fastapi import FastAPI\n\napp = FastAPI()\n"
REQUIREMENTS = b"fastapi==0.115.0\nuvicorn==0.30.6\n"
LIMITS = {"max_bytes": 1 << 20, "max_entries": 100}

Entry = tuple[str, bytes] | tarfile.TarInfo


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=2).encode()


def fastapi_entries(prefix: str = "") -> list[Entry]:
    return [
        (f"{prefix}manifest.json", manifest_bytes(FASTAPI_MANIFEST)),
        (f"{prefix}requirements.txt", REQUIREMENTS),
        (f"{prefix}app.py", APP_PY),
    ]


def info(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = linkname
    return member


def symlink(name: str, target: str) -> tarfile.TarInfo:
    return info(name, tarfile.SYMTYPE, target)


def hardlink(name: str, target: str) -> tarfile.TarInfo:
    return info(name, tarfile.LNKTYPE, target)


def directory(name: str) -> tarfile.TarInfo:
    member = info(name, tarfile.DIRTYPE)
    member.mode = 0o755
    return member


def write_tar(path: Path, entries: list[Entry], mode: str = "w:gz") -> Path:
    """Write entries like rsconnect does (tarfile, `w:gz`); a (name, bytes) pair is a regular file."""
    with tarfile.open(path, mode) as tar:  # type: ignore[call-overload]
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                member = tarfile.TarInfo(name)
                member.size = len(data)
                member.mode = 0o644
                tar.addfile(member, io.BytesIO(data))
    return path


class Paths:
    def __init__(self, tmp_path: Path) -> None:
        self.uploads = tmp_path / "uploads"
        self.uploads.mkdir()
        self.bundles = tmp_path / "bundles"
        self.dest = self.bundles / "7"

    def archive(self, entries: list[Entry], mode: str = "w:gz") -> Path:
        return write_tar(self.uploads / "bundle.tar.gz", entries, mode)

    def raw(self, data: bytes) -> Path:
        path = self.uploads / "bundle.tar.gz"
        path.write_bytes(data)
        return path

    def extract(self, archive: Path, **limits: int) -> Manifest:
        return extract_bundle(archive, self.dest, **{**LIMITS, **limits})

    def files(self) -> dict[str, bytes]:
        return {p.relative_to(self.dest).as_posix(): p.read_bytes() for p in self.dest.rglob("*") if p.is_file()}

    def assert_nothing_left(self) -> None:
        assert not self.dest.exists()
        assert not self.bundles.exists() or list(self.bundles.iterdir()) == []


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path)


def test_captured_fastapi_bundle_extracts_and_parses(paths: Paths) -> None:
    manifest = paths.extract(paths.archive(fastapi_entries()))

    assert manifest.appmode == "python-fastapi"
    assert manifest.entrypoint == "app"
    assert manifest.python_version == "3.11.7"
    assert manifest.package_file == "requirements.txt"
    assert manifest.package_manager == "pip"
    assert (manifest.allow_uv, manifest.requires_python, manifest.environment_management) == (None, None, None)
    assert manifest.needs_python
    assert manifest.raw == FASTAPI_MANIFEST
    assert API_APP_MODES[manifest.appmode] == "asgi"
    assert paths.files() == {
        "manifest.json": manifest_bytes(FASTAPI_MANIFEST),
        "requirements.txt": REQUIREMENTS,
        "app.py": APP_PY,
    }
    assert read_requirements(paths.dest, manifest) == REQUIREMENTS.decode()
    assert [p.name for p in paths.bundles.iterdir()] == ["7"]  # the staging directory is gone


def test_captured_uv_manifest_parses() -> None:
    manifest = parse_manifest(manifest_bytes(FASTAPI_UV_MANIFEST))

    assert (manifest.package_manager, manifest.allow_uv) == ("uv", True)
    assert manifest.python_version == "3.11.9"
    assert manifest.requires_python == "==3.11.9"
    assert manifest.environment_management is False


def test_nested_top_directories_are_stripped(paths: Paths) -> None:
    entries: list[Entry] = [directory("sales-api"), directory("sales-api/v1"), *fastapi_entries("sales-api/v1/")]
    entries.append(("sales-api/v1/lib/helpers.py", b"X = 1\n"))

    manifest = paths.extract(paths.archive(entries))

    assert manifest.appmode == "python-fastapi"
    assert sorted(paths.files()) == ["app.py", "lib/helpers.py", "manifest.json", "requirements.txt"]


def test_html_bundle_with_manifest_last(paths: Paths) -> None:
    entries: list[Entry] = [
        ("css/site.css", b"body {}\n"),
        ("index.html", b"<h1>Sales</h1>\n"),
        ("manifest.json", manifest_bytes(HTML_MANIFEST)),
    ]

    manifest = paths.extract(paths.archive(entries))

    assert (manifest.appmode, manifest.primary_html, manifest.entrypoint) == ("static", "index.html", "index.html")
    assert not manifest.needs_python
    assert manifest.package_file is None
    assert sorted(paths.files()) == ["css/site.css", "index.html", "manifest.json"]


def test_uncompressed_tar_with_dot_prefixes(paths: Paths) -> None:
    # `tar cf bundle.tar .` writes "./" and "./name" members.
    entries: list[Entry] = [directory("."), *fastapi_entries("./")]

    manifest = paths.extract(paths.archive(entries, mode="w"))

    assert manifest.entrypoint == "app"
    assert sorted(paths.files()) == ["app.py", "manifest.json", "requirements.txt"]


def test_extracting_again_returns_the_existing_bundle(paths: Paths) -> None:
    archive = paths.archive(fastapi_entries())
    first = paths.extract(archive)
    archive.unlink()  # a second call must not need the archive at all

    assert paths.extract(archive) == first


def test_links_inside_the_bundle_become_copies(paths: Paths) -> None:
    entries: list[Entry] = [
        *fastapi_entries(),
        ("assets/logo.svg", b"<svg/>"),
        ("data/v2.csv", b"a,b\n"),
        symlink("data/latest.csv", "v2.csv"),
        symlink("static", "assets"),
        symlink("assets/current.svg", "logo.svg"),  # inside the directory `static` copies, so written first
        symlink("latest", "data/latest.csv"),  # a link to a link
        symlink("icon.svg", "static/logo.svg"),  # through a link
        hardlink("app_copy.py", "app.py"),
    ]

    paths.extract(paths.archive(entries))

    files = paths.files()
    assert files["data/latest.csv"] == files["latest"] == b"a,b\n"
    assert files["static/logo.svg"] == files["static/current.svg"] == files["icon.svg"] == b"<svg/>"
    assert files["app_copy.py"] == APP_PY
    assert not any(p.is_symlink() for p in paths.dest.rglob("*"))


def test_quarto_static_needs_python_only_with_a_python_section() -> None:
    quarto = {"version": 1, "metadata": {"appmode": "quarto-static"}, "quarto": {"version": "1.5.57"}}
    assert not parse_manifest(manifest_bytes(quarto)).needs_python

    with_python = parse_manifest(manifest_bytes({**quarto, "python": {"version": "3.11.7"}}))
    assert with_python.needs_python
    assert with_python.package_file == "requirements.txt"  # the default when the section names none


def test_app_mode_tables() -> None:
    assert (APP_MODES["unknown"], APP_MODES["python-fastapi"], APP_MODES["nodejs"], APP_MODES["nodejs-api"]) == (
        0,
        12,
        20,
        20,
    )
    assert PYTHON_APP_MODES <= set(APP_MODES)
    assert "quarto-static" not in PYTHON_APP_MODES and "tensorflow-saved-model" not in PYTHON_APP_MODES
    assert API_APP_MODES == {"python-fastapi": "asgi", "python-api": "wsgi"}


def _manifest_with(**changes: Any) -> list[Entry]:
    return [("manifest.json", manifest_bytes({**FASTAPI_MANIFEST, **changes})), ("app.py", APP_PY)]


def _big() -> list[Entry]:
    return [*fastapi_entries(), ("data.bin", bytes(2 << 20))]


def _pax_bomb() -> list[Entry]:
    """Pax headers under the limit for one header, but more of them than the bundle's data limit allows."""
    members = [tarfile.TarInfo(f"app{i}.py") for i in range(3)]
    for member in members:
        member.pax_headers = {"comment": "x" * (600 << 10)}
    return list(members)


def _pax_header_too_large() -> list[Entry]:
    member = tarfile.TarInfo("app.py")
    member.pax_headers = {"comment": "x" * (2 << 20)}
    return [member]


def _device(kind: bytes) -> Callable[[], list[Entry]]:
    return lambda: [*fastapi_entries(), info("dev/thing", kind)]


BAD_ARCHIVES: dict[str, tuple[Callable[[], list[Entry]], list[str]]] = {
    "traversal": (lambda: [*fastapi_entries(), ("../x", b"x")], ['Bundle entry "../x" points outside the bundle']),
    "traversal-nested": (
        lambda: [*fastapi_entries(), ("lib/../../etc/passwd", b"x")],
        ['Bundle entry "lib/../../etc/passwd" points outside the bundle'],
    ),
    "absolute": (lambda: [*fastapi_entries(), ("/etc/passwd", b"x")], ['"/etc/passwd" is an absolute path']),
    "symlink-absolute": (
        lambda: [*fastapi_entries(), symlink("link", "/etc/passwd")],
        ['Bundle entry "link" is a link to "/etc/passwd", which points outside the bundle'],
    ),
    "symlink-up": (
        lambda: [*fastapi_entries(), symlink("lib/link", "../../x")],
        ['Bundle entry "lib/link" is a link to "../../x", which points outside the bundle'],
    ),
    "hardlink-out": (
        lambda: [*fastapi_entries(), hardlink("link", "../outside.txt")],
        ['Bundle entry "link" is a link to "../outside.txt", which points outside the bundle'],
    ),
    "hardlink-absolute": (
        lambda: [*fastapi_entries(), hardlink("link", "/etc/shadow")],
        ['"link" is a link to "/etc/shadow", which points outside the bundle'],
    ),
    "symlink-loop": (
        lambda: [*fastapi_entries(), symlink("a", "b"), symlink("b", "a")],
        ["chain or loop of more than 40 links"],
    ),
    "symlink-to-own-directory": (
        lambda: [*fastapi_entries(), symlink("lib/up", "..")],
        ['"lib/up" is a link to itself or to a directory that contains it'],
    ),
    "symlink-dangling": (
        lambda: [*fastapi_entries(), symlink("link", "missing.txt")],
        ['"link" is a link to "missing.txt", which is not in the bundle'],
    ),
    "write-through-symlink": (
        lambda: [*fastapi_entries(), ("lib/x.py", b""), symlink("dir", "lib"), ("dir/evil.py", b"")],
        ['Bundle entry "dir" is a link, but the bundle also has entries at or inside that path'],
    ),
    "name-too-long": (
        lambda: [*fastapi_entries(), ("lib/" + "x" * 300, b"")],
        ['Bundle entry "lib/xxxxxxxx', 'xxx..." cannot be written here (File name too long)'],  # long names shortened
    ),
    "link-name-too-long": (
        lambda: [*fastapi_entries(), symlink("y" * 300, "app.py")],
        ["cannot be written here (File name too long)"],
    ),
    "fifo": (_device(tarfile.FIFOTYPE), ['Bundle entry "dev/thing" is a FIFO']),
    "character-device": (_device(tarfile.CHRTYPE), ['Bundle entry "dev/thing" is a character device']),
    "too-many-entries": (
        lambda: [*fastapi_entries(), *((f"f{i}.txt", b"") for i in range(100))],
        ['Bundle entry "f97.txt" is past the limit of 100 entries', "`[publishing] bundle_max_entries`"],
    ),
    "too-large": (
        _big,
        ['Bundle entry "data.bin" takes the bundle past 1 MiB unpacked', "`[publishing] bundle_max_size`"],
    ),
    "pax-header-bomb": (_pax_bomb, ["unpacks to more than", "of tar data"]),
    "pax-header-too-large": (
        _pax_header_too_large,
        ["The bundle has a pax extended header of 2,097,", "bytes, over the limit of 1 MiB for one header"],
    ),
    "links-multiply-data": (
        lambda: [*fastapi_entries(), ("data/zeros", bytes(600 << 10)), symlink("c1", "data"), symlink("c2", "data")],
        ['Bundle entry "c1" takes the bundle past 1 MiB unpacked'],
    ),
    "no-manifest": (
        lambda: [("app.py", APP_PY), ("requirements.txt", REQUIREMENTS)],
        ["The bundle has no manifest.json at its root; deploy with rsconnect", "`rsconnect write-manifest`"],
    ),
    "manifest-not-json": (
        lambda: [("manifest.json", b'{"metadata": {"appmode": "python-fastapi",}}'), ("app.py", APP_PY)],
        ["manifest.json is not valid JSON", "line 1, column 43"],
    ),
    "unknown-appmode": (
        lambda: _manifest_with(metadata={"appmode": "python-flsk", "entrypoint": "app"}),
        ['manifest.json: `metadata.appmode` is "python-flsk", which Packyard does not know', "python-fastapi"],
    ),
    "missing-requirements": (
        lambda: _manifest_with(),
        ["The bundle has no requirements.txt (named by manifest.json `python.package_manager.package_file`)"],
    ),
    "missing-entrypoint": (
        lambda: _manifest_with(metadata={"appmode": "python-fastapi"}),
        ["manifest.json: `metadata.entrypoint` is missing; an API bundle names its module, e.g. `app` or `app:app`"],
    ),
}


@pytest.mark.parametrize("case", BAD_ARCHIVES)
def test_bad_archive_is_refused_and_leaves_nothing(paths: Paths, case: str) -> None:
    build, expected = BAD_ARCHIVES[case]
    archive = paths.archive(build())
    if case in ("too-large", "pax-header-bomb", "pax-header-too-large"):
        assert archive.stat().st_size < 20_000  # tiny compressed, so only counting while unpacking catches it

    with pytest.raises(BundleError) as caught:
        paths.extract(archive)

    for words in expected:
        assert words in str(caught.value)
    paths.assert_nothing_left()


def test_a_pax_header_that_declares_a_tebibyte_is_refused_before_it_is_read(paths: Paths) -> None:
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, 1 << 40  # GNU's base-256 size field holds it
    # 64 MiB of zeros after it (64 KiB compressed) under a 1 GiB limit: plain tarfile would read them all into memory.
    archive = paths.raw(gzip.compress(pax.tobuf(format=tarfile.GNU_FORMAT) + bytes(64 << 20)))

    with pytest.raises(BundleError) as caught:
        paths.extract(archive, max_bytes=1 << 30)

    assert str(caught.value) == (
        f"The bundle has a pax extended header of {1 << 40:,} bytes, over the limit of 1 MiB for one header; "
        "upload the .tar.gz that rsconnect makes."
    )
    paths.assert_nothing_left()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", "{}")
    return buffer.getvalue()


def _tar_gz() -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name, content in [*fastapi_entries(), ("data.bin", bytes(range(256)) * 400)]:
            assert isinstance(content, bytes)
            member = tarfile.TarInfo(name)
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    return data.getvalue()


def _truncated() -> bytes:
    data = _tar_gz()
    return data[: len(data) // 2]


def _bad_crc() -> bytes:
    data = bytearray(_tar_gz())
    data[-8] ^= 0xFF  # the trailer: CRC-32 then length
    return bytes(data)


BAD_BYTES: dict[str, tuple[Callable[[], bytes], list[str]]] = {
    "zip": (
        _zip,
        [
            "The bundle is not a gzip-compressed tar archive (it starts with b'PK\\x03\\x04",
            "a zip archive",
            "rsconnect",
        ],
    ),
    "text": (lambda: b"hello", ["not a gzip-compressed tar archive (it starts with b'hello')"]),
    "empty": (lambda: b"", ["not a gzip-compressed tar archive (it is empty)"]),
    "truncated-gzip": (_truncated, ["The bundle is truncated or corrupt"]),
    "gzip-of-not-tar": (lambda: gzip.compress(b"just text, no tar" * 100), ["The bundle is not a valid tar archive"]),
    "gzip-bad-crc": (_bad_crc, ["The bundle is truncated or corrupt", "CRC"]),
}


@pytest.mark.parametrize("case", BAD_BYTES)
def test_not_a_bundle_is_refused_and_leaves_nothing(paths: Paths, case: str) -> None:
    build, expected = BAD_BYTES[case]

    with pytest.raises(BundleError) as caught:
        paths.extract(paths.raw(build()))

    for words in expected:
        assert words in str(caught.value)
    paths.assert_nothing_left()


def test_damaged_gzip_tail_is_refused(paths: Paths) -> None:
    # Everything tar needs arrives intact; only the gzip trailer (CRC and length) is cut off.
    data = paths.archive(fastapi_entries()).read_bytes()

    with pytest.raises(BundleError, match="truncated or corrupt"):
        paths.extract(paths.raw(data[:-4]))
    paths.assert_nothing_left()


BAD_MANIFESTS: dict[str, tuple[Any, str]] = {
    "array": ([], "manifest.json holds an array, not an object"),
    "no-metadata": ({"version": 1}, "manifest.json: `metadata` is missing"),
    "metadata-not-object": ({"metadata": "fastapi"}, 'manifest.json: `metadata` is "fastapi", not an object'),
    "no-appmode": ({"metadata": {}}, "manifest.json: `metadata.appmode` is missing; use one of python-fastapi"),
    "appmode-not-string": ({"metadata": {"appmode": 12}}, "manifest.json: `metadata.appmode` is 12, not a string"),
    "python-version-not-string": (
        {"metadata": {"appmode": "python-dash"}, "python": {"version": 3.11}},
        "manifest.json: `python.version` is 3.11, not a string",
    ),
    "bad-requires": (
        {"metadata": {"appmode": "python-dash"}, "environment": {"python": {"requires": "3.11"}}},
        'manifest.json: `environment.python.requires` is "3.11", which is not a version specifier',
    ),
    "package-file-outside": (
        {"metadata": {"appmode": "python-dash"}, "python": {"package_manager": {"package_file": "../reqs.txt"}}},
        'manifest.json: `python.package_manager.package_file` is "../reqs.txt", which is not a file inside the bundle',
    ),
    "unknown-package-manager": (
        {"metadata": {"appmode": "python-dash"}, "python": {"package_manager": {"name": "conda"}}},
        'manifest.json: `python.package_manager.name` is "conda"; Packyard installs with pip or uv',
    ),
    "allow-uv-not-bool": (
        {"metadata": {"appmode": "python-dash"}, "python": {"package_manager": {"allow_uv": "yes"}}},
        'manifest.json: `python.package_manager.allow_uv` is "yes", not true or false',
    ),
    "wsgi-without-entrypoint": (
        {"metadata": {"appmode": "python-api", "entrypoint": ""}},
        "manifest.json: `metadata.entrypoint` is missing",
    ),
}


@pytest.mark.parametrize("case", BAD_MANIFESTS)
def test_bad_manifest_names_the_field(case: str) -> None:
    document, expected = BAD_MANIFESTS[case]

    with pytest.raises(BundleError) as caught:
        parse_manifest(json.dumps(document).encode())

    assert expected in str(caught.value)


def test_unknown_appmode_suggests_the_closest() -> None:
    with pytest.raises(BundleError, match="did you mean python-api"):
        parse_manifest(b'{"metadata": {"appmode": "python-apii"}}')


def test_python_mode_without_python_section_defaults_to_requirements_txt() -> None:
    manifest = parse_manifest(b'{"metadata": {"appmode": "python-streamlit", "entrypoint": "app.py"}}')

    assert (manifest.package_file, manifest.python_version, manifest.needs_python) == ("requirements.txt", None, True)


def test_read_requirements_refuses_non_utf8(paths: Paths) -> None:
    manifest = paths.extract(paths.archive(fastapi_entries()))
    (paths.dest / "requirements.txt").write_bytes("fastapi\n".encode("utf-16"))

    with pytest.raises(BundleError, match=r"requirements.txt is not UTF-8 text \(byte b'\\xff' at position 0\)"):
        read_requirements(paths.dest, manifest)


def test_read_requirements_accepts_a_byte_order_mark(paths: Paths) -> None:
    manifest = paths.extract(paths.archive(fastapi_entries()))
    (paths.dest / "requirements.txt").write_bytes(b"\xef\xbb\xbffastapi\n")

    assert read_requirements(paths.dest, manifest) == "fastapi\n"


def test_read_requirements_refuses_a_file_past_the_limit(paths: Paths) -> None:
    manifest = paths.extract(paths.archive(fastapi_entries()))
    (paths.dest / "requirements.txt").write_bytes(b"#" * (MAX_PACKAGE_FILE_SIZE + 1))

    with pytest.raises(BundleError) as caught:
        read_requirements(paths.dest, manifest)
    assert str(caught.value).startswith(
        f"The bundle's requirements.txt is {MAX_PACKAGE_FILE_SIZE + 1:,} bytes, over the limit of 8 MiB; "
    )
