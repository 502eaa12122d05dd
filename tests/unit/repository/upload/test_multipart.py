"""The upload body parser: what twine and `uv publish` send is read the same by the whole-body splitter (bodies up
to `WHOLE_BODY`) and by python-multipart (larger ones), and every malformed framing is refused with a sentence,
leaving nothing staged."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from packyard.repository.errors import FileTooLarge, UploadRejected
from packyard.repository.upload.multipart import (
    FORM_OVERHEAD,
    MAX_FIELD_SIZE,
    MAX_FIELDS,
    MAX_FORM_SIZE,
    MAX_PART_HEADERS,
    WHOLE_BODY,
    UploadParts,
    read_upload,
)
from packyard.storage import LocalBlobStore

BOUNDARY = "b0undary"
CTYPE = f"multipart/form-data; boundary={BOUNDARY}"
WHEEL = b"PK\x03\x04 not really a wheel"
# Padding that moves a body past WHOLE_BODY, so the same parts go through the streaming parser.
PADDING = b"x" * (WHOLE_BODY + 1)


def part(name: str, value: bytes, filename: str | None = None, extra: str = "") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "") + extra
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


def body(*parts: bytes, close: bool = True) -> bytes:
    return b"".join(parts) + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def upload(
    parts_body: bytes, store: LocalBlobStore, ctype: str = CTYPE, max_size: int = 10 * WHOLE_BODY
) -> UploadParts:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(parts_body), 65536):  # as the server receives it, in pieces
            yield parts_body[start : start + 65536]

    return asyncio.run(read_upload(ctype, chunks(), store, max_size))


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def nothing_stored(store: LocalBlobStore) -> bool:
    return not [p for p in store.root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("padded", [False, True], ids=["whole-body", "streaming"])
def test_what_twine_sends_is_read_alike_by_both_parsers(store: LocalBlobStore, padded: bool) -> None:
    fields = [part(":action", b"file_upload"), part("name", b"demo"), part("version", b"1.0")]
    fields += [part("classifiers", b"A"), part("classifiers", b"B"), part("description", PADDING if padded else b"")]
    parts = upload(body(*fields, part("content", WHEEL, "demo-1.0-py3-none-any.whl")), store)
    assert parts.first("name") == "demo" and parts.fields["classifiers"] == ["A", "B"]
    assert parts.content_filename == "demo-1.0-py3-none-any.whl"
    assert parts.content is not None and parts.content.size == len(WHEEL)
    with parts.content.open() as staged:
        assert staged.read() == WHEEL


@pytest.mark.parametrize("padded", [False, True], ids=["whole-body", "streaming"])
def test_a_disposition_the_fast_match_does_not_cover(store: LocalBlobStore, padded: bool) -> None:
    # Unquoted name, extra parameters, a percent sign: the general parser (parse_options_header) reads them.
    weird = f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=version; x=1\r\n\r\n2.0\r\n".encode()
    fields = [weird, part("summary", b"100%"), part("description", PADDING if padded else b"")]
    parts = upload(body(*fields), store)
    assert parts.first("version") == "2.0" and parts.first("summary") == "100%"


# Each malformed body, and the end of the sentence that says what is wrong with it.
MALFORMED = {
    "no closing boundary": (body(part("name", b"demo"), close=False), "the closing boundary is missing"),
    "text after a boundary": (
        f'--{BOUNDARY} junk\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--{BOUNDARY}--\r\n'.encode(),
        "a boundary line is followed by text",
    ),
    "headers that never end": (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a"\r\nv\r\n--{BOUNDARY}--\r\n'.encode(),
        "the headers of a part do not end",
    ),
    "a header with no colon": (
        f"--{BOUNDARY}\r\nContent-Disposition form-data\r\n\r\nv\r\n--{BOUNDARY}--\r\n".encode(),
        "header line b'Content-Disposition form-data' has no colon",
    ),
    "nothing but a preamble": (b"hello", "the closing boundary is missing"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_framing_is_refused_in_a_sentence(store: LocalBlobStore, case: str) -> None:
    malformed, reason = MALFORMED[case]
    with pytest.raises(UploadRejected) as refused:
        upload(part("content", WHEEL, "demo-1.0-py3-none-any.whl") + malformed, store)
    assert str(refused.value) == f"The multipart body could not be parsed: {reason}."
    assert nothing_stored(store)


def test_malformed_framing_in_a_streamed_body_is_refused_too(store: LocalBlobStore) -> None:
    streamed = part("content", WHEEL, "demo-1.0-py3-none-any.whl") + part("description", PADDING)
    with pytest.raises(UploadRejected, match="The multipart body could not be parsed"):
        upload(streamed + b"--" + BOUNDARY.encode() + b"\r\nbroken", store)
    assert nothing_stored(store)


@pytest.mark.parametrize(
    ("ctype", "shown"),
    [("application/x-www-form-urlencoded", "multipart/form-data"), ("multipart/form-data", "with a boundary")],
)
def test_a_body_that_is_not_multipart_with_a_boundary(store: LocalBlobStore, ctype: str, shown: str) -> None:
    with pytest.raises(UploadRejected, match=shown):
        upload(body(part("name", b"demo")), store, ctype=ctype)
    assert nothing_stored(store)


@pytest.mark.parametrize("padded", [False, True], ids=["whole-body", "streaming"])
def test_rules_inside_well_formed_bodies(store: LocalBlobStore, padded: bool) -> None:
    pad = [part("description", PADDING)] if padded else []
    wheel = part("content", WHEEL, "demo-1.0-py3-none-any.whl")
    cases = [
        (body(*pad, wheel, wheel), "more than one `content` file"),
        (body(*pad, part("content", WHEEL, "C:\\dir\\demo-1.0-py3-none-any.whl")), "no backslash"),
        (body(*pad, *[part("f", b"") for _ in range(MAX_FIELDS + 1)]), f"more than {MAX_FIELDS} form fields"),
        (body(*pad, wheel, part("gpg_signature", b"s" * 70_000, "x.asc")), "`gpg_signature` is larger than"),
    ]
    for malformed, shown in cases:
        with pytest.raises(UploadRejected, match=shown.replace("(", r"\(")):
            upload(malformed, store)
        assert nothing_stored(store), shown


@pytest.mark.parametrize("padded", [False, True], ids=["whole-body", "streaming"])
def test_a_file_over_the_limit_is_refused(store: LocalBlobStore, padded: bool) -> None:
    pad = [part("description", PADDING)] if padded else []
    with pytest.raises(FileTooLarge, match="Limit for uploads is 10 bytes"):
        upload(body(*pad, part("content", WHEEL, "demo-1.0-py3-none-any.whl")), store, max_size=10)
    assert nothing_stored(store)


def read_counting(chunks: Iterator[bytes], store: LocalBlobStore, max_size: int) -> tuple[Exception, int]:
    """Feed `chunks` to the parser until it refuses them; the error and how many bytes it took first."""
    taken = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal taken
        for chunk in chunks:
            taken += len(chunk)
            yield chunk

    with pytest.raises((FileTooLarge, UploadRejected)) as refused:
        asyncio.run(read_upload(CTYPE, counted(), store, max_size))
    return refused.value, taken


def test_a_file_is_refused_as_soon_as_it_passes_the_limit(store: LocalBlobStore) -> None:
    head = part("content", b"", "demo-1.0-py3-none-any.whl").removesuffix(b"\r\n")
    endless = itertools.chain([head], itertools.repeat(b"\0" * 65536))  # a file that never ends
    error, taken = read_counting(endless, store, max_size=2 * WHOLE_BODY)
    assert isinstance(error, FileTooLarge)
    assert taken <= 2 * WHOLE_BODY + WHOLE_BODY + 65536 + len(head)  # the limit, the whole-body buffer, a chunk
    assert nothing_stored(store)


def test_a_body_past_the_file_limit_and_the_form_is_refused_whatever_it_holds(store: LocalBlobStore) -> None:
    # Bytes after the closing boundary are dropped by the parser, so only the body's size can stop them.
    endless = itertools.chain([body(part("name", b"demo"))], itertools.repeat(b"x" * 65536))
    error, taken = read_counting(endless, store, max_size=WHOLE_BODY)
    assert isinstance(error, FileTooLarge) and str(error).startswith("File too large. Limit for uploads is")
    assert taken <= WHOLE_BODY + FORM_OVERHEAD + 65536
    assert nothing_stored(store)


@pytest.mark.parametrize("padded", [False, True], ids=["whole-body", "streaming"])
def test_fields_and_part_headers_are_bounded_in_memory(store: LocalBlobStore, padded: bool) -> None:
    wheel = part("content", WHEEL, "demo-1.0-py3-none-any.whl")
    description = b"d" * (MAX_FIELD_SIZE - 1)
    fields = [part(f"description{i}", description) for i in range(MAX_FORM_SIZE // MAX_FIELD_SIZE + 1)]
    with pytest.raises(UploadRejected) as refused:
        upload(body(*fields, wheel), store, max_size=10 * MAX_FORM_SIZE)
    assert str(refused.value) == (
        "The upload's form fields are larger than 4 MiB together (form field `description2` goes past it); "
        "shorten the long description."
    )
    pad = [part("description", PADDING)] if padded else []
    # Five lines of 4,000 bytes: each under python-multipart's own bounds on one header line and the number of them.
    headers = "".join(f"X-Long-{i}: {'h' * 4000}\r\n" for i in range(MAX_PART_HEADERS // 4000 + 1))
    long_header = f"--{BOUNDARY}\r\n{headers}\r\nv\r\n".encode()
    with pytest.raises(UploadRejected, match="^A part of the upload has headers longer than 16 KiB; "):
        upload(body(*pad, wheel, long_header), store)
    assert nothing_stored(store)
