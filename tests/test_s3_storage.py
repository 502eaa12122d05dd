"""`[storage] type = "s3"` end to end: a real `packyard run` on a bucket of moto's S3 server on loopback. Uploads
and installs, Range, redirects to presigned URLs, a deployed bundle, an interrupted upload, and an outage."""

from __future__ import annotations

import base64
import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from packyard.monitoring import PROBE
from tests.conftest import Server, _start, pip, run, uv_bin
from tests.dists import make_sdist, make_wheel
from tests.publishing import copy_app, publishing_server, setup_publishing
from tests.s3 import MotoS3


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoS3) -> str:
    return moto_s3.new_bucket()


@pytest.fixture(scope="module")
def s3_server(moto_s3: MotoS3, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = _start(tmp_path_factory.mktemp("packyard-s3"), "", moto_s3.env(bucket, PACKYARD_STORAGE_PREFIX="pk"))
    dist = tmp_path_factory.mktemp("dist")
    make_wheel(dist, "s3-app", "1.0", requires=["s3-lib"])
    make_wheel(dist, "s3-lib", "1.0")
    make_sdist(dist, "s3-lib", "1.0")
    server.twine(*sorted(dist.iterdir()))
    try:
        yield server
    finally:
        server.stop()


def file_url(server: Server, project: str, suffix: str = ".whl") -> tuple[str, str]:
    page = httpx.get(
        f"{server.index}{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=30
    ).json()
    found = next(f for f in page["files"] if f["filename"].endswith(suffix))
    return httpx.URL(f"{server.index}{project}/").join(found["url"]).copy_with(fragment=None).__str__(), found[
        "hashes"
    ]["sha256"]


def test_uploads_live_in_the_bucket_and_install(
    s3_server: Server, moto_s3: MotoS3, bucket: str, venv: Path, client_env: dict[str, str]
) -> None:
    keys = moto_s3.keys(bucket)
    assert len(keys) >= 3 and all(key.startswith("pk/blobs/") for key in keys), keys
    assert not (s3_server.data_dir / "blobs").exists() or not any((s3_server.data_dir / "blobs").rglob("*/*"))
    _, digest = file_url(s3_server, "s3-lib")
    assert f"pk/blobs/{digest}" in keys
    run(pip(venv, "install", "--index-url", s3_server.index, "s3-app"), client_env)
    run(
        [
            str(uv_bin()),
            "pip",
            "install",
            "--reinstall",
            "--python",
            str(venv / "bin" / "python"),
            "--index-url",
            s3_server.index,
            "s3-app",
        ],  # fmt: skip
        client_env,
    )


def test_a_range_request_is_a_slice_of_the_stored_file(s3_server: Server) -> None:
    url, _ = file_url(s3_server, "s3-lib", ".tar.gz")
    whole = httpx.get(url, timeout=30)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    part = httpx.get(url, headers={"Range": "bytes=5-14"}, timeout=30)
    assert part.status_code == 206 and part.content == whole.content[5:15]
    assert part.headers["content-range"] == f"bytes 5-14/{len(whole.content)}"


def test_an_interrupted_upload_leaves_no_object(s3_server: Server, moto_s3: MotoS3, bucket: str) -> None:
    before = moto_s3.keys(bucket)
    boundary = "xyzzy"
    head = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="cut-1.0-py3-none-any.whl"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b"PK"
        + b"x" * 200_000
    )
    auth = base64.b64encode(f"__token__:{s3_server.upload_token}".encode()).decode()
    with socket.create_connection(("127.0.0.1", s3_server.port), timeout=30) as sock:
        request = (
            f"POST /upload/pypi/local-python-src HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(head) + 1_000_000}\r\n\r\n"
        )
        sock.sendall(request.encode() + head)
        time.sleep(0.5)  # the server is now streaming the body into a staged blob
    time.sleep(1)
    assert moto_s3.keys(bucket) == before
    staging = s3_server.data_dir / "s3-staging"
    assert not any(staging.iterdir()), list(staging.iterdir())


def test_redirect_sends_installers_to_a_presigned_url(
    moto_s3: MotoS3, tmp_path: Path, venv: Path, client_env: dict[str, str]
) -> None:
    bucket = moto_s3.new_bucket()
    server = _start(tmp_path / "data", "", moto_s3.env(bucket, PACKYARD_STORAGE_REDIRECT="true"))
    try:
        dist = tmp_path / "dist"
        make_wheel(dist, "s3-redirected", "1.0")
        server.twine(*dist.iterdir())
        url, _ = file_url(server, "s3-redirected")
        answer = httpx.get(url, timeout=30)
        assert answer.status_code == 307 and answer.headers["location"].startswith(moto_s3.url)
        assert answer.headers["cache-control"] == "no-store"
        assert (
            httpx.get(answer.headers["location"], timeout=30).content
            == (dist / "s3_redirected-1.0-py3-none-any.whl").read_bytes()
        )
        run(pip(venv, "install", "--index-url", server.index, "s3-redirected"), client_env)
    finally:
        server.stop()


def test_a_static_site_bundle_is_stored_in_the_bucket(
    moto_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory
) -> None:
    bucket = moto_s3.new_bucket()
    with publishing_server("sqlite", tmp_path_factory.mktemp("packyard-s3-pub"), moto_s3.env(bucket)) as server:
        pub = setup_publishing(server, tmp_path_factory.mktemp("home"), wheels=None)
        app = copy_app("html-site", tmp_path_factory.mktemp("apps"))
        pub.deploy("html", app)
        guid = pub.record(app)["app_guid"]
        probe = f"blobs/{hashlib.sha256(PROBE).hexdigest()}"  # what `/__health__` reads back
        bundle_keys = [key for key in moto_s3.keys(bucket) if key != probe]
        assert len(bundle_keys) == 1 and bundle_keys[0].startswith("blobs/")
        page = pub.get(f"/content/{guid}/")
        assert page.status_code == 200 and "version 1" in page.text


def test_an_outage_is_a_503_and_packyard_recovers_without_a_restart(
    s3_server: Server, moto_s3: MotoS3, tmp_path: Path
) -> None:
    url, _ = file_url(s3_server, "s3-lib", ".tar.gz")
    moto_s3.stop()
    try:
        down = httpx.get(url, timeout=60)
        assert down.status_code == 503, down.text
        assert "The blob store is unavailable (bucket `" in down.text and "try again shortly" in down.text
        make_wheel(tmp_path, "s3-during-outage", "1.0")
        upload = s3_server.twine(*tmp_path.glob("*.whl"), check=False)
        assert upload.returncode != 0 and "503" in upload.stdout + upload.stderr
    finally:
        moto_s3.start()
    assert httpx.get(url, timeout=30).status_code == 200
    assert s3_server.twine(*tmp_path.glob("*.whl")).returncode == 0
    assert s3_server.process.poll() is None
