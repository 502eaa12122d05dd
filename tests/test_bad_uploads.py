"""Bad uploads to the legacy upload API: each gets the right status, a message that says what to fix (in the
body and in the HTTP reason phrase, which is all twine shows), and stores nothing at all."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import tarfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from packaging.utils import canonicalize_name
from sqlalchemy import func, select

from packyard.changelog.events import Event
from packyard.config import load_settings
from packyard.db import Database
from packyard.repository.models import CoreMetadata, DistFile, Project
from tests.conftest import Server, run, uv_bin
from tests.dists import make_sdist, make_wheel

JSON_PAGE = "application/vnd.pypi.simple.v1+json"
MiB = 1024 * 1024
DEFAULT_TOKEN = "<upload token>"
OTHER_SOURCE_TOKEN = ("--scope", "sources:write", "--sources", "other-src")
READ_TOKEN = ("--scope", "repos:read", "--repos", "*")
TOKENS = [("--scope", "sources:write", "--sources", "local-python-src"), OTHER_SOURCE_TOKEN, READ_TOKEN]


@dataclass(frozen=True)
class Req:
    """One HTTP request: `content` is bytes (sent with Content-Length) or an iterator (sent chunked)."""

    url: str
    content: bytes | Callable[[], Iterator[bytes]]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Env:
    server: Server
    dist: Path
    db: Database
    blobs: Path

    def send(self, req: Req) -> httpx.Response:
        content = req.content if isinstance(req.content, bytes) else req.content()
        return httpx.post(req.url, content=content, headers=req.headers, timeout=60)


Build = Callable[[Env, Path], Req]


@dataclass(frozen=True)
class Snapshot:
    pages: dict[str, tuple[int, str | None]]
    blobs: frozenset[str]
    events: dict[str, int]  # change-log rows by kind
    files: int


def basic(token: str, user: str = "__token__") -> str:
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


def multipart(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """Encode a form by hand, as urllib3 does for twine: the filename goes out byte for byte."""
    boundary = f"packyard-test-{uuid.uuid4().hex}"
    body = bytearray()
    for name, value in fields:
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        body += value.encode() + b"\r\n"
    for name, filename, data in files:
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body), f"multipart/form-data; boundary={boundary}"


def form_fields(
    data: bytes, name: str, version: str = "1.0", filetype: str = "bdist_wheel", pyversion: str | None = None
) -> dict[str, str | None]:
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name,
        "version": version,
        "filetype": filetype,
        "pyversion": pyversion if pyversion is not None else ("py3" if filetype == "bdist_wheel" else "source"),
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
        "requires_python": "",
    }


def upload(
    env: Env,
    data: bytes,
    filename: str,
    name: str,
    version: str = "1.0",
    *,
    filetype: str = "bdist_wheel",
    pyversion: str | None = None,
    fields: dict[str, str | None] | None = None,
    signature: bytes | None = None,
    token: str | None = DEFAULT_TOKEN,
    url: str | None = None,
    chunked: bool = False,
) -> Req:
    """What twine sends for one file; `fields` overrides or (with None) removes form fields."""
    form = form_fields(data, name, version, filetype, pyversion)
    form.update(fields or {})
    files = [("content", filename, data)]
    if signature is not None:
        files.append(("gpg_signature", filename + ".asc", signature))
    body, content_type = multipart([(k, v) for k, v in form.items() if v is not None], files)
    headers = {"Content-Type": content_type}
    if token == DEFAULT_TOKEN:
        token = env.server.upload_token
    if token is not None:
        headers["Authorization"] = basic(token)
    if chunked:

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(body), 64 * 1024):
                yield body[i : i + 64 * 1024]

        return Req(url or env.server.upload_url, chunks, headers)
    return Req(url or env.server.upload_url, body, headers)


def wheel(out: Path, name: str, version: str = "1.0", **kwargs: object) -> tuple[bytes, str]:
    path = make_wheel(out, name, version, **kwargs)  # type: ignore[arg-type]
    return path.read_bytes(), path.name


def sdist(out: Path, name: str, version: str = "1.0", **kwargs: object) -> tuple[bytes, str]:
    path = make_sdist(out, name, version, **kwargs)  # type: ignore[arg-type]
    return path.read_bytes(), path.name


def wheel_upload(env: Env, out: Path, project: str, **fields: str) -> Req:
    """A valid wheel of `project` 1.0, sent with these form fields changed."""
    data, filename = wheel(out, project)
    return upload(env, data, filename, project, fields=dict(fields))


def blob_files(env: Env) -> frozenset[str]:
    return frozenset(
        str(p.relative_to(env.blobs))
        for p in env.blobs.rglob("*")
        if p.is_file() and ".staging" not in p.relative_to(env.blobs).parts
    )


def staging_files(env: Env) -> list[Path]:
    return list((env.blobs / ".staging").iterdir())


def page(env: Env, project: str) -> tuple[int, str | None]:
    r = httpx.get(f"{env.server.index}{project}/" if project else env.server.index, headers={"Accept": JSON_PAGE})
    return r.status_code, r.headers.get("etag")


def settle(env: Env) -> None:
    """Wait until the root page lists every stored project: the server renders root pages up to half a second
    after an upload (and logs a `root-render` event then), which must not land inside another test's window."""
    deadline = time.monotonic() + 10
    while True:
        with env.db.session() as session:
            stored = set(session.scalars(select(Project.name)))
        root = httpx.get(env.server.index, headers={"Accept": JSON_PAGE}).json()
        listed = {canonicalize_name(p["name"]) for p in root["projects"]}
        if listed == stored:
            return
        assert time.monotonic() < deadline, f"the root page lists {sorted(listed)}, the database {sorted(stored)}"
        time.sleep(0.1)


def snapshot(env: Env, projects: tuple[str, ...]) -> Snapshot:
    with env.db.session() as session:
        rows = session.execute(select(Event.kind, func.count()).group_by(Event.kind)).all()
        events = {kind: count for kind, count in rows}
        files = session.scalar(select(func.count()).select_from(DistFile)) or 0
    return Snapshot({p: page(env, p) for p in ("", *projects)}, blob_files(env), events, files)


def flat(text: str) -> str:
    """The message as the reason phrase carries it: no backticks, one line."""
    return " ".join(text.replace("`", "").split())


def assert_rejected(response: httpx.Response, status: int, fragments: tuple[str, ...]) -> None:
    assert response.status_code == status, f"{response.status_code} {response.reason_phrase}: {response.text}"
    body, reason = flat(response.text), response.reason_phrase
    for fragment in fragments:
        assert fragment in body, f"{fragment!r} not in body {response.text!r}"
        assert fragment in reason, f"{fragment!r} not in reason phrase {reason!r}"


def assert_nothing_stored(env: Env, before: Snapshot, projects: tuple[str, ...]) -> None:
    after = snapshot(env, projects)
    assert after.pages == before.pages, "a simple page changed"
    assert after.blobs == before.blobs, f"new blobs: {sorted(after.blobs - before.blobs)}"
    assert after.events == before.events, "the change log grew"
    assert after.files == before.files, "a file row was added"
    assert staging_files(env) == [], "a staged upload was left behind"


@pytest.fixture(scope="module")
def env(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """The server with `kept-pkg` 1.0 (wheel and sdist) already uploaded, and the tokens the cases use."""
    settings = load_settings(server.data_dir)
    db = Database(settings.database_url)
    e = Env(server, tmp_path_factory.mktemp("bad-uploads"), db, server.data_dir / "blobs")
    assert settings.blob_dir == e.blobs.resolve()
    server.cli("source", "create", "--name", "other-src")  # a token names sources that exist
    # Each CLI run costs a couple of seconds of imports, so run them side by side.
    with ThreadPoolExecutor() as pool:
        list(pool.map(lambda args: server.token(*args), TOKENS))
    for data, filename in (wheel(e.dist / "kept", "kept-pkg"), sdist(e.dist / "kept", "kept-pkg")):
        r = e.send(
            upload(e, data, filename, "kept-pkg", filetype="sdist" if filename.endswith(".gz") else "bdist_wheel")
        )
        assert r.status_code == 200, r.text
    settle(e)
    yield e
    db.dispose()


# --- the table ------------------------------------------------------------------------------------------------


def _corrupt_zip(env: Env, out: Path) -> Req:
    return upload(env, b"PK\x03\x04 this is not really a zip file" * 10, "corrupt-1.0-py3-none-any.whl", "corrupt")


def _corrupt_sdist(env: Env, out: Path) -> Req:
    return upload(env, b"not gzip at all", "corrupt-sdist-1.0.tar.gz", "corrupt-sdist", filetype="sdist")


def _huge_tar_header(kind: bytes) -> Build:
    """An sdist whose first member is an extended header declaring 1 TiB, followed by 32 MiB of zeros (32 KiB
    gzipped): tarfile alone would read every byte after the header into memory, looking for the rest."""

    def build(env: Env, out: Path) -> Req:
        header = tarfile.TarInfo("././@PaxHeader")
        header.type, header.size = kind, 1 << 40
        data = gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT) + bytes(32 << 20))
        return upload(env, data, "tar_bomb-1.0.tar.gz", "tar-bomb", filetype="sdist")

    return build


def _unsafe_member(env: Env, out: Path) -> Req:
    path = make_wheel(out, "zip-slip", "1.0")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("../../evil.py", b"print('owned')\n")
    return upload(env, path.read_bytes(), path.name, "zip-slip")


def _metadata(name: str, version: str) -> str:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n"


def _metadata_name(env: Env, out: Path) -> Req:
    data, filename = wheel(out, "meta-name", metadata=_metadata("someone-else", "1.0"))
    return upload(env, data, filename, "meta-name")


def _metadata_version(env: Env, out: Path) -> Req:
    data, filename = wheel(out, "meta-version", metadata=_metadata("meta-version", "2.0"))
    return upload(env, data, filename, "meta-version")


def _renamed(name: str, filename: str, filetype: str = "bdist_wheel", pyversion: str | None = None) -> Build:
    """A valid wheel of `name` 1.0 sent under another filename."""

    def build(env: Env, out: Path) -> Req:
        data, _ = wheel(out, name)
        return upload(env, data, filename, name, filetype=filetype, pyversion=pyversion)

    return build


def _httpx_renamed(name: str, filename: str) -> Build:
    """The same, encoded by httpx (as pdm sends it), which escapes a backslash as `\\\\`."""

    def build(env: Env, out: Path) -> Req:
        data, _ = wheel(out, name)
        request = httpx.Request(
            "POST",
            env.server.upload_url,
            data=form_fields(data, name),
            files={"content": (filename, data, "application/octet-stream")},
        )
        headers = {
            "Content-Type": request.headers["content-type"],
            "Authorization": basic(env.server.upload_token),
        }
        return Req(env.server.upload_url, request.read(), headers)

    return build


def _fields(name: str, **fields: str | None) -> Build:
    def build(env: Env, out: Path) -> Req:
        data, filename = wheel(out, name)
        return upload(env, data, filename, name, fields={k.replace("__", ":"): v for k, v in fields.items()})

    return build


def _token(name: str, token: Callable[[Server], str | None]) -> Build:
    def build(env: Env, out: Path) -> Req:
        data, filename = wheel(out, name)
        return upload(env, data, filename, name, token=token(env.server))

    return build


def _big(size: int, chunked: bool = False) -> Build:
    """`size` incompressible bytes under a wheel's name; only the size limit should look at them."""

    def build(env: Env, out: Path) -> Req:
        data = hashlib.shake_256(b"packyard").digest(size)
        return upload(env, data, "too_big-1.0-py3-none-any.whl", "too-big", chunked=chunked)

    return build


def _second_sdist(env: Env, out: Path) -> Req:
    data, _ = sdist(out, "kept-pkg", requires=["something-else"])
    return upload(env, data, "Kept.Pkg-1.0.tar.gz", "kept-pkg", filetype="sdist")


def _bad_signature(env: Env, out: Path) -> Req:
    data, filename = wheel(out, "signed-pkg")
    return upload(env, data, filename, "signed-pkg", signature=b"this is not a signature\n")


def _bad_requires_python(env: Env, out: Path) -> Req:
    data, filename = wheel(out, "bad-rp", requires_python="=>3.8")
    return upload(env, data, filename, "bad-rp")


def _simple_index(env: Env, out: Path) -> Req:
    data, filename = wheel(out, "misdirected")
    return upload(env, data, filename, "misdirected", url=env.server.index)


def _no_content(env: Env, out: Path) -> Req:
    body, content_type = multipart(
        [(":action", "file_upload"), ("protocol_version", "1"), ("name", "no-file"), ("version", "1.0")], []
    )
    return Req(
        env.server.upload_url, body, {"Content-Type": content_type, "Authorization": basic(env.server.upload_token)}
    )


def _not_multipart(env: Env, out: Path) -> Req:
    headers = {"Content-Type": "application/json", "Authorization": basic(env.server.upload_token)}
    return Req(env.server.upload_url, json.dumps({"name": "json-pkg"}).encode(), headers)


@dataclass(frozen=True)
class Case:
    id: str
    build: Build
    status: int
    fragments: tuple[str, ...]
    projects: tuple[str, ...] = ()


CASES = [
    # The form against the filename.
    Case(
        "wrong-name",
        lambda e, o: wheel_upload(e, o, "right-name", name="other-name"),
        400,
        ("is for project right-name, but the upload says other-name",),
        ("right-name", "other-name"),
    ),
    Case(
        "wrong-version",
        lambda e, o: wheel_upload(e, o, "right-version", version="2.0"),
        400,
        ("is for version 1.0, but the upload says 2.0",),
        ("right-version",),
    ),
    Case(
        "invalid-form-version",
        lambda e, o: wheel_upload(e, o, "form-version", version="one"),
        400,
        ("Invalid version 'one'",),
        ("form-version",),
    ),
    Case(
        "invalid-project-name",
        lambda e, o: wheel_upload(e, o, "form-name", name="-form-name-"),
        400,
        ("Invalid project name '-form-name-'",),
        ("form-name",),
    ),
    Case(
        "not-a-dist-filename",
        _renamed("short-name", "short_name-1.0.whl"),
        400,
        ("'short_name-1.0.whl' is not a valid distribution filename",),
        ("short-name",),
    ),
    # The archive.
    Case("corrupt-zip", _corrupt_zip, 400, ("is not a valid zip archive",), ("corrupt",)),
    Case(
        "sdist-pax-header-of-1-tib",
        _huge_tar_header(tarfile.XHDTYPE),
        400,
        ("'tar_bomb-1.0.tar.gz' has a pax extended header of 1,099,511,627,776 bytes, over the limit of 1 MiB",),
        ("tar-bomb",),
    ),
    Case(
        "sdist-gnu-long-name-of-1-tib",
        _huge_tar_header(tarfile.GNUTYPE_LONGNAME),
        400,
        ("has a GNU long name of 1,099,511,627,776 bytes", "rebuild the sdist with uv build --sdist"),
        ("tar-bomb",),
    ),
    Case(
        "corrupt-sdist",
        _corrupt_sdist,
        400,
        ("is not a valid gzip-compressed tar archive",),
        ("corrupt-sdist",),
    ),
    Case(
        "wheel-without-metadata",
        lambda e, o: upload(e, *wheel(o, "no-metadata", skip=("METADATA",)), "no-metadata"),
        400,
        ("does not contain the required METADATA file",),
        ("no-metadata",),
    ),
    Case(
        "wheel-without-record",
        lambda e, o: upload(e, *wheel(o, "no-record", skip=("RECORD",)), "no-record"),
        400,
        ("does not contain a RECORD file",),
        ("no-record",),
    ),
    Case("unsafe-zip-member", _unsafe_member, 400, ("contains an unsafe path '../../evil.py'",), ("zip-slip",)),
    Case(
        "metadata-name-differs",
        _metadata_name,
        400,
        ("The metadata inside 'meta_name-1.0-py3-none-any.whl' names project someone-else",),
        ("meta-name", "someone-else"),
    ),
    Case(
        "metadata-version-differs",
        _metadata_version,
        400,
        ("says version 2.0, but the filename says 1.0",),
        ("meta-version",),
    ),
    Case(
        "invalid-requires-python",
        _bad_requires_python,
        400,
        ("has invalid Requires-Python '=>3.8'",),
        ("bad-rp",),
    ),
    # Path tricks in the filename.
    *(
        Case(f"path-{label}", _renamed(name, filename), 400, ("Invalid filename", "has no path"), (name,))
        for label, name, filename in [
            ("dotdot-slash", "path-a", "../path_a-1.0-py3-none-any.whl"),
            ("dotdot-backslash", "path-b", "..\\path_b-1.0-py3-none-any.whl"),
            ("absolute", "path-c", "/tmp/path_c-1.0-py3-none-any.whl"),
            ("subdir", "path-d", "dist/path_d-1.0-py3-none-any.whl"),
            ("windows-drive", "path-e", "C:\\dist\\path_e-1.0-py3-none-any.whl"),
            ("windows-unc", "path-f", "\\\\host\\share\\path_f-1.0-py3-none-any.whl"),
            ("windows-backslashes", "path-i", "dist\\path_i-1.0-py3-none-any.whl"),
            ("control-char", "path-g", "path_g-1.0-py3-none-any\x07.whl"),
            ("escape-char", "path-h", "path_h\x1b-1.0-py3-none-any.whl"),
        ]
    ),
    # httpx (pdm) escapes backslashes, so the server sees the path as the client meant it.
    *(
        Case(f"path-{label}-httpx", _httpx_renamed(name, filename), 400, ("Invalid filename", "has no path"), (name,))
        for label, name, filename in [
            ("dotdot-backslash", "path-j", "..\\path_j-1.0-py3-none-any.whl"),
            ("windows-drive", "path-k", "C:\\dist\\path_k-1.0-py3-none-any.whl"),
            ("windows-unc", "path-l", "\\\\host\\share\\path_l-1.0-py3-none-any.whl"),
        ]
    ),
    # Extensions and filetypes.
    *(
        Case(
            f"extension-{ext}",
            _renamed("ext-pkg", f"ext_pkg-1.0{suffix}"),
            400,
            ("Invalid file extension",),
            ("ext-pkg",),
        )
        for ext, suffix in [("zip", ".zip"), ("egg", "-py3.11.egg"), ("exe", ".win-amd64.exe")]
    ),
    Case(
        "unknown-filetype",
        _renamed("egg-pkg", "egg_pkg-1.0-py3.11.egg", filetype="bdist_egg", pyversion="3.11"),
        400,
        ("Unknown filetype 'bdist_egg'",),
        ("egg-pkg",),
    ),
    Case(
        "wheel-sent-as-sdist",
        _renamed("type-pkg", "type_pkg-1.0-py3-none-any.whl", filetype="sdist"),
        400,
        ("does not match filetype sdist",),
        ("type-pkg",),
    ),
    Case(
        "sdist-sent-as-wheel",
        lambda e, o: upload(e, *sdist(o, "type-pkg2"), "type-pkg2", filetype="bdist_wheel"),
        400,
        ("does not match filetype bdist_wheel",),
        ("type-pkg2",),
    ),
    Case(
        "sdist-with-python-version",
        lambda e, o: upload(e, *sdist(o, "sdist-py"), "sdist-py", filetype="sdist", pyversion="py3"),
        400,
        ("Use 'source' as Python version for an sdist",),
        ("sdist-py",),
    ),
    # Size: the test server allows 2 MiB. Over 6 MiB the Content-Length alone is refused; under it, and when the
    # body is chunked, the stream is cut off at 2 MiB.
    Case("too-large", _big(3 * MiB), 413, ("File too large", "Limit for uploads is 2097152 bytes"), ("too-big",)),
    Case("too-large-chunked", _big(3 * MiB, chunked=True), 413, ("File too large", "2097152 bytes"), ("too-big",)),
    Case("too-large-by-one-byte", _big(2 * MiB + 1), 413, ("File too large",), ("too-big",)),
    Case("too-large-by-one-byte-chunked", _big(2 * MiB + 1, chunked=True), 413, ("File too large",), ("too-big",)),
    Case("too-large-content-length", _big(7 * MiB), 413, ("File too large",), ("too-big",)),
    # Exactly at the limit passes the size check and fails later, on the archive.
    Case("at-the-limit", _big(2 * MiB), 400, ("is not a valid zip archive",), ("too-big",)),
    # Digests.
    Case(
        "bad-sha256",
        _fields("digest-a", sha256_digest="0" * 64),
        400,
        ("The digest supplied does not match", "sha256_digest"),
        ("digest-a",),
    ),
    Case(
        "bad-blake2",
        _fields("digest-b", blake2_256_digest="f" * 64),
        400,
        ("The digest supplied does not match", "blake2_256_digest"),
        ("digest-b",),
    ),
    Case(
        "bad-md5",
        _fields("digest-c", md5_digest="0" * 32),
        400,
        ("The digest supplied does not match", "md5_digest"),
        ("digest-c",),
    ),
    Case(
        "no-digest",
        _fields("digest-d", sha256_digest=None, blake2_256_digest=None),
        400,
        ("Include at least one message digest",),
        ("digest-d",),
    ),
    # Request shape.
    Case("missing-action", _fields("act-a", __action=None), 400, ("Missing :action field",), ("act-a",)),
    Case(
        "action-submit",
        _fields("act-b", __action="submit"),
        410,
        ("Project pre-registration is no longer required",),
        ("act-b",),
    ),
    Case("action-unknown", _fields("act-c", __action="remove_pkg"), 400, ("Unknown :action 'remove_pkg'",), ("act-c",)),
    Case(
        "protocol-version",
        _fields("act-d", protocol_version="2"),
        400,
        ("Unknown protocol version '2'",),
        ("act-d",),
    ),
    Case(
        "missing-metadata-version",
        _fields("act-e", metadata_version=None),
        400,
        ("metadata_version is a required field",),
        ("act-e",),
    ),
    Case("no-content-part", _no_content, 400, ("Upload payload does not have a file",), ("no-file",)),
    Case("not-multipart", _not_multipart, 400, ("must be multipart/form-data",), ("json-pkg",)),
    # Where and who.
    Case(
        "unknown-source",
        lambda e, o: upload(e, *wheel(o, "lost-pkg"), "lost-pkg", url=f"{e.server.url}/upload/pypi/no-such-src"),
        404,
        ("Source no-such-src does not exist",),
        ("lost-pkg",),
    ),
    Case("no-token", _token("auth-a", lambda s: None), 401, ("Authentication required",), ("auth-a",)),
    Case("empty-password", _token("auth-b", lambda s: ""), 401, ("Authentication required",), ("auth-b",)),
    Case(
        "invalid-token",
        _token("auth-c", lambda s: "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"),
        401,
        ("The token is not valid for this server",),
        ("auth-c",),
    ),
    Case(
        "token-for-other-source",
        _token("auth-d", lambda s: s.token(*OTHER_SOURCE_TOKEN)),
        403,
        ("does not grant sources:write on source local-python-src",),
        ("auth-d",),
    ),
    Case(
        "read-only-token",
        _token("auth-e", lambda s: s.token(*READ_TOKEN)),
        403,
        ("does not grant sources:write on source local-python-src",),
        ("auth-e",),
    ),
    # State.
    Case(
        "second-sdist",
        _second_sdist,
        400,
        ("Only one sdist may be uploaded per release", "already has 'kept_pkg-1.0.tar.gz'"),
        ("kept-pkg",),
    ),
    Case(
        "invalid-gpg-signature",
        _bad_signature,
        400,
        ("The gpg_signature is not an ASCII-armored OpenPGP signature",),
        ("signed-pkg",),
    ),
    # The simple index is read-only: uv turns a 405 into "are you using the simple index URL instead of the
    # upload URL?" (astral-sh/uv#15021), and a 2xx would look like a successful upload.
    Case("post-to-simple-index", _simple_index, 405, ("simple index URL, which is read-only",), ("misdirected",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_upload_is_rejected_and_stores_nothing(env: Env, case: Case, tmp_path: Path) -> None:
    req = case.build(env, tmp_path)
    settle(env)
    before = snapshot(env, case.projects)
    response = env.send(req)
    assert_rejected(response, case.status, case.fragments)
    if case.status == 401:
        assert response.headers.get("www-authenticate", "").startswith("Basic ")
    if case.status == 405:
        assert "GET" in response.headers.get("allow", ""), "a 405 must list the allowed methods"
    assert_nothing_stored(env, before, case.projects)


def test_errors_are_problem_json_when_the_client_asks_for_json(env: Env, tmp_path: Path) -> None:
    # uv publish sends `Accept: application/json;q=0.9, text/plain;q=0.8, text/html;q=0.7`.
    req = _fields("json-err", sha256_digest="0" * 64)(env, tmp_path)
    settle(env)
    before = snapshot(env, ("json-err",))
    accept = "application/json;q=0.9, text/plain;q=0.8, text/html;q=0.7"
    response = env.send(Req(req.url, req.content, {**req.headers, "Accept": accept}))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400
    assert problem["title"] == "Bad Request"
    assert "The digest supplied does not match" in problem["detail"]
    assert "The digest supplied does not match" in response.reason_phrase
    assert_nothing_stored(env, before, ("json-err",))


def test_uv_publish_to_the_simple_index_says_so(env: Env, tmp_path: Path) -> None:
    data, filename = wheel(tmp_path / "dist", "uv-misdirected")
    settle(env)
    before = snapshot(env, ("uv-misdirected",))
    result = run(
        [
            str(uv_bin()),
            "publish",
            "--no-cache",
            "--publish-url",
            env.server.index,
            "--token",
            env.server.upload_token,
            str(tmp_path / "dist" / filename),
        ],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1"},
        check=False,
    )
    assert result.returncode != 0
    assert "simple index URL instead of the upload URL" in result.stderr, result.stderr
    assert_nothing_stored(env, before, ("uv-misdirected",))


def test_identical_reupload_answers_200_and_stores_nothing(env: Env) -> None:
    data, filename = wheel(env.dist / "kept", "kept-pkg")  # rebuilt deterministically: the same bytes
    settle(env)
    before = snapshot(env, ("kept-pkg",))
    response = env.send(upload(env, data, filename, "kept-pkg"))
    assert response.status_code == 200, response.text
    assert "already stored with identical content" in response.text
    assert_nothing_stored(env, before, ("kept-pkg",))


def test_different_file_under_an_existing_filename_is_refused(env: Env, tmp_path: Path) -> None:
    data, filename = wheel(tmp_path, "kept-pkg", payload=b"# changed\n")
    assert filename == "kept_pkg-1.0-py3-none-any.whl"
    settle(env)
    before = snapshot(env, ("kept-pkg",))
    response = env.send(upload(env, data, filename, "kept-pkg"))
    assert response.status_code == 400, response.text
    # twine and poetry look for "already exist" to implement --skip-existing.
    assert response.text.startswith("File already exists")
    assert response.reason_phrase.startswith("File already exists")
    assert "kept_pkg-1.0-py3-none-any.whl" in response.reason_phrase
    assert_nothing_stored(env, before, ("kept-pkg",))


def test_successful_upload_is_served_with_size_time_hash_and_metadata(env: Env, tmp_path: Path) -> None:
    path = make_wheel(tmp_path, "fresh-pkg", "1.0", requires_python=">=3.8", payload=b"# fresh\n")
    data = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        metadata = zf.read("fresh_pkg-1.0.dist-info/METADATA")
    settle(env)
    before = snapshot(env, ("fresh-pkg",))
    assert before.pages["fresh-pkg"][0] == 404
    started = datetime.now(UTC)
    response = env.send(upload(env, data, path.name, "fresh-pkg", fields={"requires_python": ">=3.8"}))
    assert response.status_code == 200, response.text
    assert hashlib.sha256(data).hexdigest() in response.text

    settle(env)
    after = snapshot(env, ("fresh-pkg",))
    assert after.files == before.files + 1
    assert after.events.get("upload", 0) == before.events.get("upload", 0) + 1
    assert len(after.blobs - before.blobs) == 1, "the wheel; its METADATA is kept in the database"
    with env.db.session() as session:
        assert session.get(CoreMetadata, hashlib.sha256(metadata).hexdigest()).data == metadata
    assert staging_files(env) == []
    assert after.pages[""][1] != before.pages[""][1], "the root page lists the new project"

    page_url = f"{env.server.index}fresh-pkg/"
    got = httpx.get(page_url, headers={"Accept": JSON_PAGE})
    assert got.status_code == 200
    (entry,) = got.json()["files"]
    assert entry["filename"] == path.name
    assert entry["size"] == len(data)
    assert entry["hashes"] == {"sha256": hashlib.sha256(data).hexdigest()}
    assert entry["requires-python"] == ">=3.8"
    assert entry["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
    assert entry["data-dist-info-metadata"] == entry["core-metadata"]
    uploaded = datetime.strptime(entry["upload-time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert started - timedelta(seconds=5) <= uploaded <= datetime.now(UTC) + timedelta(seconds=5)

    file_url = urljoin(page_url, entry["url"])
    assert httpx.get(file_url).content == data
    assert httpx.get(file_url + ".metadata").content == metadata
