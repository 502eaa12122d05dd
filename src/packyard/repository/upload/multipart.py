"""Stream a `multipart/form-data` upload: the dist goes straight to a staged blob, hashed as it arrives."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from packyard.repository.errors import FileTooLarge, UploadRejected
from packyard.storage import BlobStore, StagedBlob

MAX_FIELD_SIZE = 2 * 1024 * 1024  # long descriptions are the largest text fields seen
MAX_FIELDS = 2000
MAX_SIGNATURE_SIZE = 64 * 1024
# Everything but the file is held in memory: every field and signature together, and each part's headers.
MAX_FORM_SIZE = 4 * 1024 * 1024
MAX_PART_HEADERS = 16 * 1024
# The body may exceed the file limit by the framing and fields around the file; past that it is refused at once.
FORM_OVERHEAD = MAX_FORM_SIZE + 64 * 1024
# Bodies up to this size are parsed whole, once read; larger ones stream through python-multipart. The split copies
# the body three times: at 900 KiB it was 1.7x faster or 3.3x slower than python-multipart depending on whether the
# copies landed in fresh memory (page faults); up to 480 KiB it was ahead every time (bench/handmade-results.md).
WHOLE_BODY = 512 * 1024
_SIMPLE_DISPOSITION = re.compile(rb'form-data; name="([^"\\%]*)"(?:; filename="([^"\\%/]*)")?')
_RAW_FILENAME = re.compile(rb'filename="?([^";]*)')


@dataclass
class UploadParts:
    fields: dict[str, list[str]] = field(default_factory=dict)
    content: StagedBlob | None = None
    content_filename: str = ""
    signature: bytes | None = None

    def first(self, name: str) -> str:
        values = self.fields.get(name)
        return values[0].strip() if values else ""


class _Reader:
    def __init__(self, store: BlobStore, max_file_size: int) -> None:
        self.store = store
        self.max_file_size = max_file_size
        self.parts = UploadParts()
        self._header_field = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._filename: str | None = None
        self._buffer = bytearray()
        self._target: str = "field"
        self._count = 0
        self._form_size = 0  # bytes of fields and signature held so far
        self._header_size = 0  # bytes of the current part's headers

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._buffer = bytearray()
        self._header_size = 0
        self._count += 1
        if self._count > MAX_FIELDS:
            raise UploadRejected(f"The upload has more than {MAX_FIELDS} form fields.")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_value += data[start:end]

    def _count_header(self, size: int) -> None:
        self._header_size += size
        if self._header_size > MAX_PART_HEADERS:
            raise UploadRejected(
                f"A part of the upload has headers longer than {MAX_PART_HEADERS // 1024} KiB; "
                "send the form as twine or `uv publish` do."
            )

    def on_header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_field = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        simple = _SIMPLE_DISPOSITION.fullmatch(self._disposition)
        if simple is not None:  # what twine and uv send; anything else goes through the general parser
            name, raw_filename = simple.group(1), simple.group(2)
        else:
            _, options = parse_options_header(self._disposition)
            name, raw_filename = options.get(b"name", b""), options.get(b"filename")
        self._name = name.decode("utf-8", "replace")
        self._filename = raw_filename.decode("utf-8", "replace") if raw_filename is not None else None
        if self._name == "content" and self._filename is not None:
            if b"\\" in self._disposition:
                # python-multipart trims `C:\dir\x.whl` and `\\host\x.whl` to their last part (an old IE
                # workaround), so a path would pass the filename check; refuse any backslash here.
                raw = _RAW_FILENAME.search(self._disposition)
                shown = raw.group(1).decode("utf-8", "replace") if raw else self._filename
                raise UploadRejected(
                    f"Invalid filename {shown!r}: a distribution filename has no path, no `..` and no backslash."
                )
            if self.parts.content is not None:
                raise UploadRejected("The upload has more than one `content` file; send one file per request.")
            self._target = "content"
            self.parts.content_filename = self._filename
            self.parts.content = self.store.stage(named=False)
        elif self._name == "gpg_signature":
            self._target = "signature"
        else:
            self._target = "field"

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._target == "content":
            content = self.parts.content
            assert content is not None
            if content.size + len(chunk) > self.max_file_size:
                # Refused at once: the server reads no more of the body (uvicorn drops the rest unread as it
                # arrives, so the client still gets the 413 once it has sent everything).
                raise file_too_large(self.max_file_size)
            content.write(chunk)
        else:
            limit = MAX_SIGNATURE_SIZE if self._target == "signature" else MAX_FIELD_SIZE
            if len(self._buffer) + len(chunk) > limit:
                raise UploadRejected(f"Form field `{self._name}` is larger than {limit} bytes.")
            self._form_size += len(chunk)
            if self._form_size > MAX_FORM_SIZE:
                raise UploadRejected(
                    f"The upload's form fields are larger than {MAX_FORM_SIZE >> 20} MiB together (form field "
                    f"`{self._name}` goes past it); shorten the long description."
                )
            self._buffer.extend(chunk)

    def on_part_end(self) -> None:
        if self._target == "signature":
            self.parts.signature = bytes(self._buffer)
        elif self._target == "field":
            self.parts.fields.setdefault(self._name, []).append(self._buffer.decode("utf-8", "replace"))


async def read_upload(
    content_type: str, chunks: AsyncIterator[bytes], store: BlobStore, max_file_size: int
) -> UploadParts:
    """Parse the request body; on any error the staged blob is discarded before raising."""
    ctype, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UploadRejected(
            "Uploads must be `multipart/form-data` with a boundary, as twine and `uv publish` send them."
        )
    reader = _Reader(store, max_file_size)
    head: list[bytes] = []
    size = 0
    parser: MultipartParser | None = None
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_file_size + FORM_OVERHEAD:  # a chunked body has no Content-Length to check up front
                raise file_too_large(max_file_size)
            if parser is not None:
                parser.write(chunk)
                continue
            head.append(chunk)
            if size > WHOLE_BODY:
                parser = _streaming_parser(boundary, reader)
                for buffered in head:
                    parser.write(buffered)
                head = []
        if parser is None:
            _parse_whole(b"".join(head), boundary, reader)
        else:
            parser.finalize()
            # python-multipart's finalize() does not check that the body ended (upstream leaves that undone); the
            # whole-body splitter does, so a body missing its closing delimiter is refused whichever parser read it.
            if parser.state != MultipartState.END:
                raise FormParserError("the closing boundary is missing")
    except FormParserError as exc:
        discard(store, reader.parts)
        raise UploadRejected(f"The multipart body could not be parsed: {exc}.") from exc
    except BaseException:
        discard(store, reader.parts)
        raise
    return reader.parts


def file_too_large(max_file_size: int) -> FileTooLarge:
    """The 413 for a file past `[upload] max_file_size`, or a body past it and the form around the file."""
    return FileTooLarge(
        f"File too large. Limit for uploads is {max_file_size} bytes ({max_file_size / 1024 / 1024:.0f} MiB); "
        "an administrator can raise `[upload] max_file_size`."
    )


def _streaming_parser(boundary: bytes, reader: _Reader) -> MultipartParser:
    return MultipartParser(
        boundary,
        {
            "on_part_begin": reader.on_part_begin,
            "on_part_data": reader.on_part_data,
            "on_part_end": reader.on_part_end,
            "on_header_field": reader.on_header_field,
            "on_header_value": reader.on_header_value,
            "on_header_end": reader.on_header_end,
            "on_headers_finished": reader.on_headers_finished,
        },
    )


def _parse_whole(body: bytes, boundary: bytes, reader: _Reader) -> None:
    """A body already in memory, split at its delimiters in a few C-level passes (RFC 2046, section 5.1.1),
    driving the same callbacks as the streaming parser; python-multipart walks part headers a byte at a time."""
    sections = (b"\r\n" + body).split(b"\r\n--" + boundary)
    if len(sections) < 2 or not sections[-1].startswith(b"--"):
        raise FormParserError("the closing boundary is missing")
    for section in sections[1:-1]:
        line_end = section.find(b"\r\n")
        if line_end < 0 or section[:line_end].strip(b" \t"):
            raise FormParserError("a boundary line is followed by text")
        headers_end = section.find(b"\r\n\r\n", line_end)
        if headers_end < 0:
            raise FormParserError("the headers of a part do not end")
        reader.on_part_begin()
        for line in section[line_end + 2 : headers_end].split(b"\r\n"):
            if not line:
                continue  # a part without headers
            name, colon, value = line.partition(b":")
            if not colon:
                raise FormParserError(f"header line {line[:80]!r} has no colon")
            reader._count_header(len(line))
            reader._header_field, reader._header_value = name.strip(), value.strip()
            reader.on_header_end()
        reader.on_headers_finished()
        data = section[headers_end + 4 :]
        reader.on_part_data(data, 0, len(data))
        reader.on_part_end()


def discard(store: BlobStore, parts: UploadParts) -> None:
    if parts.content is not None:
        store.discard(parts.content)
        parts.content = None
