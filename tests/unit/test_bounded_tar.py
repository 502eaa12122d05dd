"""Tar archives with hostile extended headers: each is refused from its 512-byte header, before tarfile reads what
it declares, and archives with ordinary long names and pax headers still read."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from packyard.bounded_tar import MAX_CHAINED_HEADERS, MAX_HEADER_SIZE, BoundedTarFile
from packyard.errors import HeaderTooLarge

TIB = 1 << 40
TRAILER = bytes(4 << 20)  # what plain tarfile reads into memory for a header that declares more


def header(name: str, kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    return info.tobuf(format=tarfile.GNU_FORMAT)  # GNU's base-256 size field holds any size


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        (tarfile.XHDTYPE, "a pax extended header"),
        (tarfile.XGLTYPE, "a pax global header"),
        (tarfile.GNUTYPE_LONGNAME, "a GNU long name"),
        (tarfile.GNUTYPE_LONGLINK, "a GNU long link name"),
    ],
)
@pytest.mark.parametrize("mode", ["r:", "r|"])
def test_a_header_that_declares_a_tebibyte_is_refused_unread(kind: bytes, shown: str, mode: str) -> None:
    archive = io.BytesIO(header("././@LongLink", kind, TIB) + TRAILER)
    with pytest.raises(HeaderTooLarge) as refused:
        BoundedTarFile.open(fileobj=archive, mode=mode)  # type: ignore[call-overload]
    assert str(refused.value) == f"{shown} of {TIB:,} bytes, over the limit of 1 MiB for one header"
    assert archive.tell() <= 10240  # the header block (stream mode reads one 10 KiB record), not the 4 MiB after


def test_a_header_just_over_the_limit_is_refused_in_a_gzip_stream() -> None:
    data = gzip.compress(header("././@PaxHeader", tarfile.XHDTYPE, MAX_HEADER_SIZE + 1) + TRAILER)
    with pytest.raises(HeaderTooLarge, match=f"of {MAX_HEADER_SIZE + 1:,} bytes"):
        BoundedTarFile.open(fileobj=io.BytesIO(data), mode="r:gz")


def test_a_chain_of_extended_headers_is_refused() -> None:
    record = b"19 comment=chained\n"
    block = header("././@PaxHeader", tarfile.XHDTYPE, len(record)) + record.ljust(512, b"\0")
    archive = io.BytesIO(block * (MAX_CHAINED_HEADERS + 1) + header("a.txt", tarfile.REGTYPE, 0) + bytes(1024))
    with pytest.raises(HeaderTooLarge, match=f"^more than {MAX_CHAINED_HEADERS} extended headers in front of one"):
        BoundedTarFile.open(fileobj=archive, mode="r:")


@pytest.mark.parametrize("format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_long_names_and_pax_headers_still_read(format: int) -> None:
    buffer = io.BytesIO()
    long_name = "pkg-1.0/" + "d/" * 150 + "PKG-INFO"  # past ustar's 255 characters: a pax header or a long name
    with tarfile.open(fileobj=buffer, mode="w:gz", format=format) as tar:
        for name in (long_name, "pkg-1.0/ünïcode.txt", "pkg-1.0/short.txt"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    buffer.seek(0)
    with BoundedTarFile.open(fileobj=buffer, mode="r:gz") as tar:
        assert tar.getnames() == [long_name, "pkg-1.0/ünïcode.txt", "pkg-1.0/short.txt"]
        member = tar.extractfile(long_name)
        assert member is not None and member.read() == b"abc"
