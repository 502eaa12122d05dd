"""Request bodies over the limits, sent to a real server with small ones (`[upload] max_file_size` and
`[publishing] bundle_max_size` at 1 MiB): a package upload and a bundle upload are answered 413 with a sentence that
names the limit and the setting, when Content-Length declares too much (before any body) and as soon as a chunked
body passes the limit (the rest is never sent); nothing is stored and no staging file is left."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server
from tests.publishing import Publishing, copy_app, manifest, publishing_server, setup_publishing, tarball
from tests.raw_http import unfinished_request

MiB = 1024 * 1024
LIMIT = MiB
LIMITS = {"PACKYARD_UPLOAD_MAX_FILE_SIZE": "1MiB", "PACKYARD_PUBLISHING_BUNDLE_MAX_SIZE": "1MiB"}
UPLOAD_413 = (
    "File too large. Limit for uploads is 1048576 bytes (1 MiB); an administrator can raise `[upload] max_file_size`."
)
BUNDLE_413 = (
    "The bundle is larger than this server's limit of 1,048,576 bytes (`[publishing] bundle_max_size`); leave data "
    "files out of it, or ask an administrator to raise the limit."
)
NOISE = hashlib.shake_256(b"packyard").digest(3 * MiB)  # incompressible


@dataclass
class Limited:
    pub: Publishing
    guid: str  # a content item to upload bundles to

    @property
    def server(self) -> Server:
        return self.pub.server

    def staging(self) -> list[Path]:
        return list((self.server.data_dir / "blobs" / ".staging").iterdir())

    def bundles(self) -> list[dict[str, object]]:
        return self.pub.api("GET", f"/v1/content/{self.guid}/bundles").json()

    @property
    def bundles_url(self) -> str:
        return f"{self.server.url}/__api__/v1/content/{self.guid}/bundles"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    with publishing_server("sqlite", tmp_path_factory.mktemp("packyard-limits"), LIMITS) as server:
        pub = setup_publishing(server, tmp_path_factory.mktemp("publisher-home"), wheels=None)
        created = pub.api("POST", "/v1/content", json={"name": "limits-app"})
        assert created.status_code == 200, created.text
        yield Limited(pub, created.json()["guid"])


def form_head(filename: str) -> tuple[bytes, str]:
    """What twine sends before the file's bytes, and the Content-Type that names its boundary."""
    boundary = uuid.uuid4().hex
    fields = {":action": "file_upload", "protocol_version": "1", "name": "too-big", "version": "1.0"}
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head, f"multipart/form-data; boundary={boundary}"


def upload_headers(server: Server, content_type: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.upload_token}", "Content-Type": content_type}


def assert_upload_stored_nothing(limited: Limited) -> None:
    assert limited.staging() == []
    page = httpx.get(f"{limited.server.index}too-big/")
    assert page.status_code == 404, page.text


def test_an_upload_declaring_too_much_is_refused_before_its_body(limited: Limited) -> None:
    head, content_type = form_head("too_big-1.0-py3-none-any.whl")
    headers = {**upload_headers(limited.server, content_type), "Content-Length": str(10 * 1024 * MiB)}
    answer = unfinished_request(limited.server.upload_url, headers, [], chunked=False)
    assert answer.status == 413 and answer.body.decode() == UPLOAD_413 + "\n"
    assert_upload_stored_nothing(limited)


def test_a_chunked_upload_is_refused_as_soon_as_it_passes_the_limit(limited: Limited) -> None:
    head, content_type = form_head("too_big-1.0-py3-none-any.whl")
    # The form, then the file up to 64 KiB past the limit, in 64 KiB chunks; the body never ends.
    parts = [head] + [NOISE[i : i + 65536] for i in range(0, LIMIT + 65536, 65536)]
    answer = unfinished_request(
        limited.server.upload_url, upload_headers(limited.server, content_type), parts, chunked=True
    )
    assert answer.status == 413 and answer.body.decode() == UPLOAD_413 + "\n"
    assert_upload_stored_nothing(limited)


def test_a_chunked_upload_sent_to_its_end_gets_the_413(limited: Limited) -> None:
    head, content_type = form_head("too_big-1.0-py3-none-any.whl")

    def body() -> Iterator[bytes]:  # httpx sends an iterator chunked, without Content-Length
        yield head
        for i in range(0, len(NOISE), 65536):
            yield NOISE[i : i + 65536]
        yield f"\r\n--{content_type.rsplit('=', 1)[1]}--\r\n".encode()

    response = httpx.post(
        limited.server.upload_url, content=body(), headers=upload_headers(limited.server, content_type), timeout=60
    )
    assert response.status_code == 413 and response.text == UPLOAD_413 + "\n"
    assert_upload_stored_nothing(limited)


def bundle_headers(limited: Limited, content_type: str = "") -> dict[str, str]:
    return {**limited.pub.headers, **({"Content-Type": content_type} if content_type else {})}


def bundle_form(archive: bytes, metadata: bytes = b'{"team": "data"}') -> tuple[bytes, str]:
    """What rsconnect sends with `--metadata`: the archive part, then the metadata part."""
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; filename="bundle.tar.gz"\r\n'
        "Content-Type: application/x-tar\r\n\r\n"
    ).encode()
    body += archive + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'.encode()
    body += metadata + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def assert_no_bundle(limited: Limited) -> None:
    assert limited.bundles() == []
    assert limited.staging() == []


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_a_bundle_declaring_too_much_is_refused_before_its_body(limited: Limited, multipart: bool) -> None:
    headers = bundle_headers(limited, "multipart/form-data; boundary=x" if multipart else "")
    headers["Content-Length"] = str(10 * 1024 * MiB)
    answer = unfinished_request(limited.bundles_url, headers, [], chunked=False)
    assert answer.status == 413 and json.loads(answer.body) == {"error": BUNDLE_413, "code": 3, "payload": None}
    assert_no_bundle(limited)


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_a_chunked_bundle_is_refused_as_soon_as_it_passes_the_limit(limited: Limited, multipart: bool) -> None:
    body, content_type = bundle_form(NOISE) if multipart else (NOISE, "")
    parts = [body[i : i + 65536] for i in range(0, LIMIT + 128 * 1024, 65536)]  # the body never ends
    answer = unfinished_request(limited.bundles_url, bundle_headers(limited, content_type), parts, chunked=True)
    assert answer.status == 413 and json.loads(answer.body)["error"] == BUNDLE_413
    assert_no_bundle(limited)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_a_bundle_over_the_limit_sent_whole_gets_the_413(limited: Limited, multipart: bool, chunked: bool) -> None:
    # Just over the limit: within what Content-Length may declare for a form, so only the bytes received tell.
    archive = b"\x1f\x8b" + NOISE[: LIMIT - 1]
    body, content_type = bundle_form(archive) if multipart else (archive, "")
    content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    response = httpx.post(limited.bundles_url, content=content, headers=bundle_headers(limited, content_type))
    assert response.status_code == 413 and response.json()["error"] == BUNDLE_413
    assert_no_bundle(limited)


def test_a_metadata_part_is_bounded(limited: Limited) -> None:
    body, content_type = bundle_form(b"\x1f\x8b", metadata=b'{"x": "' + b"m" * (100 * 1024) + b'"}')
    response = httpx.post(limited.bundles_url, content=body, headers=bundle_headers(limited, content_type))
    assert response.status_code == 400
    assert response.json()["error"] == "The `metadata` part is larger than 64 KiB; send a few key-value pairs."
    assert_no_bundle(limited)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_bundle_under_the_limit_is_taken_with_its_metadata(limited: Limited, chunked: bool) -> None:
    created = limited.pub.api("POST", "/v1/content", json={"name": f"small-app-{int(chunked)}"})
    guid = created.json()["guid"]
    archive = tarball({"manifest.json": manifest(), "requirements.txt": b"fastapi\n", "app.py": b"app = None\n"})
    body, content_type = bundle_form(archive)
    content = iter([body[:100], body[100:]]) if chunked else body
    url = f"{limited.server.url}/__api__/v1/content/{guid}/bundles"
    response = httpx.post(url, content=content, headers=bundle_headers(limited, content_type))
    assert response.status_code == 200, response.text
    [bundle] = limited.pub.api("GET", f"/v1/content/{guid}/bundles").json()
    assert bundle["size"] == len(archive) and bundle["metadata"] == {"team": "data"}
    assert limited.staging() == []


def test_rsconnect_prints_the_limit(limited: Limited, tmp_path: Path) -> None:
    app = copy_app("fastapi-app", tmp_path)
    (app / "data.bin").write_bytes(NOISE[: 2 * MiB])
    result = limited.pub.deploy("fastapi", app, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and BUNDLE_413 in output, output
    assert limited.staging() == []
