"""A real S3 endpoint on loopback: moto's server mode, run in this test process so that stopping it (an outage)
and starting it again on the same port keeps the buckets, as a real object store would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from packyard.storage import S3BlobStore
from tests.conftest import free_port

REGION = "us-east-1"
# moto accepts any credentials; boto3's chain finds these in the environment, as it would real ones.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "packyard-test", "AWS_SECRET_ACCESS_KEY": "packyard-test-secret"}


class MotoS3:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/moto-api/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"moto did not start on {self.url}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self) -> Any:
        return boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        ).client("s3", endpoint_url=self.url)

    def new_bucket(self) -> str:
        name = f"packyard-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def env(self, bucket: str, **extra: str) -> dict[str, str]:
        """`packyard run`'s environment for this bucket."""
        return {
            **CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "PACKYARD_STORAGE_TYPE": "s3",
            "PACKYARD_STORAGE_BUCKET": bucket,
            "PACKYARD_STORAGE_ENDPOINT_URL": self.url,
            "PACKYARD_STORAGE_REGION": REGION,
            **extra,
        }


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    server = MotoS3()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_store(moto_s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3BlobStore:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    store = S3BlobStore(
        moto_s3.new_bucket(), tmp_path / "s3-staging", prefix="pk/", endpoint_url=moto_s3.url, region=REGION
    )
    store.check()
    return store
