"""Project names and distribution filenames."""

from __future__ import annotations

import re

from packyard.repository.errors import InvalidName

_NORMALIZE = re.compile(r"[-_.]+")
_VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
# What a distribution filename may contain: it becomes a URL path segment and a blob index key.
_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")
_ENTITY_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


def normalize(name: str) -> str:
    """PEP 503 normalization: `Foo_Bar` and `foo.bar` are both `foo-bar`."""
    return _NORMALIZE.sub("-", name).lower()


def is_valid_project_name(name: str) -> bool:
    return bool(_VALID_NAME.match(name))


def is_safe_filename(filename: str) -> bool:
    return bool(_SAFE_FILENAME.match(filename)) and ".." not in filename


def check_entity_name(kind: str, name: str) -> str:
    """Source and repository names appear in URLs: lowercase letters, digits, `.`, `_` and `-`."""
    if not _ENTITY_NAME.match(name):
        raise InvalidName(
            f"{kind} name {name!r} is not valid; use lowercase letters, digits, `.`, `_` and `-`, "
            "starting with a letter or digit (at most 100 characters)."
        )
    return name
