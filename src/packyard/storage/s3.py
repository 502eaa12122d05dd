"""Blobs in an S3 bucket (AWS, MinIO, Ceph...): `<prefix>blobs/<sha256>`, put only once whole and checked.

A write is staged in a local file while it arrives (the upload checks and the mirror read it back), and is put
under its digest key in one request carrying the sha256: S3 refuses a body whose hash differs, and an object
becomes visible only when its PUT completes, so no reader ever sees part of a blob. Credentials come from boto3's
usual chain (AWS_* variables, ~/.aws files, instance roles); Packyard's configuration holds none.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from packyard.errors import ConfigError
from packyard.storage.errors import BlobNotFound, StorageUnavailable
from packyard.storage.interfaces import StagedBlob

_DIGEST = re.compile(r"[0-9a-f]{64}")
CHUNK = 256 * 1024
# S3's limit for one PUT; larger blobs go up in parts, still visible only once the upload completes.
SINGLE_PUT_LIMIT = 5 * 1024**3
PRESIGNED_LIFETIME = 300  # seconds: long enough to start a download, short enough that a leaked link dies
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3BlobStore:
    """The `BlobStore` on an S3-compatible bucket. Every method is a blocking request: callers on the event loop
    check `local` and hand reads to a thread."""

    local = False

    def __init__(
        self,
        bucket: str,
        staging: Path,
        *,
        prefix: str = "",
        endpoint_url: str = "",
        region: str = "",
        redirect: bool = False,
    ) -> None:
        if not bucket:
            raise ConfigError('Config `storage.bucket` is empty; `storage.type = "s3"` needs the bucket to store in.')
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.redirect = redirect
        self.staging = staging
        self.staging.mkdir(parents=True, exist_ok=True)
        config = Config(
            # An outage must become a 503 within seconds, not after botocore's long default backoff.
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            # Path-style addressing works with every S3-compatible server; virtual hosts need DNS for the bucket.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        self._client: Any = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
        )

    def _key(self, digest: str) -> str:
        """Digests also come from upstream indexes: anything but 64 lowercase hex digits names no blob."""
        if _DIGEST.fullmatch(digest) is None:
            raise BlobNotFound(digest)
        return f"{self.prefix}blobs/{digest}"

    def _unavailable(self, exc: Exception) -> StorageUnavailable:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
        else:
            detail = str(exc)
        return StorageUnavailable(f"bucket `{self.bucket}`: {detail}")

    def check(self) -> None:
        """At startup: the bucket exists and these credentials reach it."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"404", "NoSuchBucket"}:
                raise ConfigError(
                    f"Config `storage.bucket`: bucket {self.bucket!r} does not exist at "
                    f"{self._client.meta.endpoint_url}; create it, or fix `storage.bucket` / `storage.endpoint_url`."
                ) from exc
            if code in {"403", "AccessDenied"}:
                raise ConfigError(
                    f"Config `storage.bucket`: access to bucket {self.bucket!r} is denied; check the AWS credentials "
                    "(AWS_ACCESS_KEY_ID / AWS_PROFILE) of the server process."
                ) from exc
            raise self._unavailable(exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable(exc) from exc

    # -- writes ------------------------------------------------------------------------------------------------

    def stage(self, named: bool = True) -> StagedBlob:
        """A local staging file: the bytes must be whole and hashed before anything is sent to the bucket."""
        fd, name = tempfile.mkstemp(dir=self.staging, prefix="upload-")
        return StagedBlob(Path(name), os.fdopen(fd, "wb"))

    def commit(self, staged: StagedBlob) -> str:
        digest = staged.digest
        key = self._key(digest)
        try:
            staged._handle.flush()
            if self.exists(digest):
                return digest
            if staged.size <= SINGLE_PUT_LIMIT:
                checksum = base64.b64encode(bytes.fromhex(digest)).decode()
                with staged._file.open("rb") as body:
                    self._client.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=body,
                        ContentLength=staged.size,
                        ChecksumAlgorithm="SHA256",
                        ChecksumSHA256=checksum,
                    )
            else:  # parts carry their own sha256; the object appears when CompleteMultipartUpload succeeds
                self._client.upload_file(
                    str(staged._file),
                    self.bucket,
                    key,
                    ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                    Config=TransferConfig(multipart_chunksize=256 * 1024**2),
                )
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(exc) from exc
        finally:
            self.discard(staged)
        return digest

    def put_bytes(self, data: bytes) -> str:
        staged = self.stage()
        staged.write(data)
        return self.commit(staged)

    def discard(self, staged: StagedBlob) -> None:
        if not staged._handle.closed:
            staged._handle.close()
        staged._file.unlink(missing_ok=True)

    def delete(self, digest: str) -> None:
        if _DIGEST.fullmatch(digest) is None:
            return
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(digest))
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(exc) from exc

    # -- reads -------------------------------------------------------------------------------------------------

    def _head(self, digest: str) -> dict[str, Any]:
        key = self._key(digest)
        try:
            head: dict[str, Any] = self._client.head_object(Bucket=self.bucket, Key=key)
            return head
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise BlobNotFound(digest) from exc
            raise self._unavailable(exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable(exc) from exc

    def exists(self, digest: str) -> bool:
        try:
            self._head(digest)
        except BlobNotFound:
            return False
        return True

    def size(self, digest: str) -> int:
        return int(self._head(digest)["ContentLength"])

    def read(self, digest: str) -> bytes:
        return b"".join(self.stream(digest))

    def open(self, digest: str) -> BinaryIO:
        """A seekable reader that fetches what is read with ranged GETs: opening an sdist's PKG-INFO or a wheel's
        METADATA reads a few hundred kilobytes, not the file."""
        return io.BufferedReader(_RangeReader(self, digest, self.size(digest)), buffer_size=CHUNK)

    def stream(self, digest: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"Not a byte range of a blob: start {start}, end {end}")
        key = self._key(digest)
        if end == start:
            self._head(digest)  # nothing to read, but a missing blob still fails here
            return iter(())
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or end is not None:
            params["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = self._client.get_object(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in _MISSING:
                raise BlobNotFound(digest) from exc
            if code == "InvalidRange":  # start at or past the end: empty, like a slice
                self._head(digest)
                return iter(())
            raise self._unavailable(exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable(exc) from exc
        return self._chunks(response["Body"])

    def _chunks(self, body: Any) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(CHUNK)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise self._unavailable(exc) from exc
        finally:
            body.close()

    @contextlib.contextmanager
    def local_file(self, digest: str) -> Iterator[Path]:
        """A copy downloaded to the staging folder, removed on exit."""
        chunks = self.stream(digest)
        fd, name = tempfile.mkstemp(dir=self.staging, prefix="download-")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
            yield path
        finally:
            path.unlink(missing_ok=True)

    def redirect_url(self, digest: str, *, media_type: str, filename: str | None = None) -> str | None:
        if not self.redirect:
            return None
        self._head(digest)  # a missing blob is Packyard's 500, not the bucket's 404 behind a redirect
        params = {"Bucket": self.bucket, "Key": self._key(digest), "ResponseContentType": media_type}
        if filename is not None:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        try:
            url: str = self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=PRESIGNED_LIFETIME)
        except BotoCoreError as exc:
            raise self._unavailable(exc) from exc
        return url


class _RangeReader(io.RawIOBase):
    """A blob as a seekable raw stream; each read is one ranged GET (buffered by the caller's BufferedReader)."""

    def __init__(self, store: S3BlobStore, digest: str, size: int) -> None:
        self._store = store
        self._digest = digest
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"Negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        end = min(self._pos + len(buffer), self._size)
        if end <= self._pos:
            return 0
        data = b"".join(self._store.stream(self._digest, self._pos, end))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)
