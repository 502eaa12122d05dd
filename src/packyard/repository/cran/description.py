"""R's DESCRIPTION files (Debian control format), R package names and versions, and how R orders versions."""

from __future__ import annotations

import re

from packyard.repository.errors import UploadRejected

# Writing R Extensions 1.1.1: letters, digits and `.`, at least two characters, starting with a letter and
# not ending in `.`.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]")
# A sequence of at least two non-negative integers separated by single `.` or `-`.
_VERSION = re.compile(r"[0-9]+([.-][0-9]+)+")
_FIELD = re.compile(r"([^\s:]+):[ \t]*(.*)")
FILENAME = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9])_(?P<version>[0-9]+(?:[.-][0-9]+)+)\.tar\.gz")


def is_valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def is_valid_version(version: str) -> bool:
    return _VERSION.fullmatch(version) is not None


def version_key(version: str) -> tuple[int, ...]:
    """R's `package_version` order: the integers, `.` and `-` alike (`1.0-10` > `1.0-9`)."""
    return tuple(int(p) for p in re.split(r"[.-]", version))


def parse(raw: bytes, where: str) -> dict[str, str]:
    """Fields of a DESCRIPTION; continuation lines (leading whitespace) are joined to their field."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # R accepts other encodings when an `Encoding:` field names them; Latin-1 decodes any byte.
        text = raw.decode("latin-1")
    fields: dict[str, str] = {}
    last: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line[0] in " \t":
            if last is None:
                raise UploadRejected(
                    f"`{where}` line {number} is a continuation line with no field before it; "
                    "start the file with `Package:`."
                )
            fields[last] += "\n" + line.strip()
            continue
        match = _FIELD.fullmatch(line)
        if match is None:
            raise UploadRejected(
                f"`{where}` line {number} ({line[:80]!r}) is not `Field: value`; fix the DESCRIPTION "
                "(continuation lines start with a space)."
            )
        last = match.group(1)
        fields[last] = match.group(2).strip()
    return fields


def one_line(value: str) -> str:
    """A field folded onto one line, as `PACKAGES` writes dependency lists."""
    return " ".join(value.split())
