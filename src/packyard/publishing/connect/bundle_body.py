"""The body of `POST /__api__/v1/content/{guid}/bundles`, streamed into a staged blob and bounded as it arrives.

rsconnect sends the tar.gz as the raw body, or as a multipart form (`archive` + `metadata`) when it has metadata
to send. Either way the body is refused with a 413 when its Content-Length says it is too large, before a byte is
read, and as soon as the bytes received pass the limit when it is sent chunked; nothing but the archive is held,
and only the `metadata` part in memory.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from packyard.publishing.errors import BundleTooLarge, PublishingError
from packyard.storage import StagedBlob

# The multipart framing and the `metadata` part around the archive (git metadata: a few hundred bytes).
MULTIPART_OVERHEAD = 1024 * 1024
MAX_METADATA_SIZE = 64 * 1024
MAX_PARTS = 10


def too_large(limit: int) -> BundleTooLarge:
    return BundleTooLarge(
        f"The bundle is larger than this server's limit of {limit:,} bytes (`[publishing] bundle_max_size`); "
        "leave data files out of it, or ask an administrator to raise the limit."
    )


def check_length(headers: Mapping[str, str], limit: int) -> None:
    """Refuse a body whose Content-Length is over the limit, before reading it."""
    length = headers.get("content-length", "")
    overhead = MULTIPART_OVERHEAD if is_multipart(headers) else 0
    if length.isdigit() and int(length) > limit + overhead:
        raise too_large(limit)


def is_multipart(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").startswith("multipart/form-data")


async def receive_raw(chunks: AsyncIterator[bytes], staged: StagedBlob, limit: int) -> None:
    async for chunk in chunks:
        _write(staged, chunk, limit)


async def receive_multipart(
    content_type: str, chunks: AsyncIterator[bytes], staged: StagedBlob, limit: int
) -> dict[str, str]:
    """The `archive` part into `staged`; returns the `metadata` part's JSON object (empty without one)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise PublishingError("The multipart upload has no boundary; send the bundle as rsconnect does.")
    reader = _Parts(staged, limit)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": reader.on_part_begin,
            "on_part_data": reader.on_part_data,
            "on_header_field": reader.on_header_field,
            "on_header_value": reader.on_header_value,
            "on_header_end": reader.on_header_end,
            "on_headers_finished": reader.on_headers_finished,
        },
    )
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > limit + MULTIPART_OVERHEAD:
                raise too_large(limit)
            parser.write(chunk)
        parser.finalize()
        if parser.state != MultipartState.END:  # python-multipart's finalize() does not check that the body ended
            raise FormParserError("the closing boundary is missing")
    except FormParserError as exc:
        raise PublishingError(f"The multipart upload could not be parsed: {exc}; send it as rsconnect does.") from exc
    if not reader.has_archive:
        raise PublishingError("The multipart upload has no `archive` file part; send the bundle as `archive`.")
    return _metadata(bytes(reader.metadata)) if reader.metadata is not None else {}


def _write(staged: StagedBlob, chunk: bytes, limit: int) -> None:
    if staged.size + len(chunk) > limit:
        raise too_large(limit)
    staged.write(chunk)


def _metadata(raw: bytes) -> dict[str, str]:
    try:
        metadata = json.loads(raw)
    except ValueError as exc:
        raise PublishingError(f"The `metadata` part is not valid JSON ({exc}).") from exc
    if not isinstance(metadata, dict):
        raise PublishingError("The `metadata` part must be a JSON object of strings.")
    return {str(k): str(v) for k, v in metadata.items()}


class _Parts:
    """python-multipart callbacks: the archive's bytes go to the staged blob, `metadata` to a bounded buffer, and
    any other part is dropped."""

    def __init__(self, staged: StagedBlob, limit: int) -> None:
        self.staged = staged
        self.limit = limit
        self.has_archive = False
        self.metadata: bytearray | None = None
        self._parts = 0
        self._header_field = b""
        self._header_value = b""
        self._disposition = b""
        self._target = ""

    def on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise PublishingError(
                f"The multipart upload has more than {MAX_PARTS} parts; send `archive` and `metadata`."
            )
        self._disposition = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"")
        if name == b"archive" and b"filename" in options:
            if self.has_archive:
                raise PublishingError("The multipart upload has more than one `archive`; send one bundle.")
            self.has_archive = True
            self._target = "archive"
        elif name == b"metadata":
            self.metadata = bytearray()
            self._target = "metadata"
        else:
            self._target = ""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._target == "archive":
            _write(self.staged, data[start:end], self.limit)
        elif self._target == "metadata":
            assert self.metadata is not None
            if len(self.metadata) + end - start > MAX_METADATA_SIZE:
                raise PublishingError(
                    f"The `metadata` part is larger than {MAX_METADATA_SIZE // 1024} KiB; send a few key-value pairs."
                )
            self.metadata += data[start:end]
