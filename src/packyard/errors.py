"""The root of every error Packyard reports to a user, and the errors of the server as a whole.

PackyardError                              (a message for a person, and the HTTP status it maps to)
├── auth.errors.AuthError                  credentials, tokens, scopes
├── repository.errors.RepositoryError      sources, repositories, projects, files, uploads
├── publishing.errors.PublishingError      content, bundles, deploys, users and keys (Connect's `code` too)
├── web.errors.PageError                   a page's own refusals (also SignInRequired, CsrfRejected)
├── storage.errors.BlobNotFound            500: no committed blob for a digest
├── storage.errors.StorageUnavailable      503: the object store is unreachable or refused a request
└── DatabaseUnavailable                    503: the database refused a connection or lost one

ConfigError                                packyard.toml or a PACKYARD_* override is not valid (startup only)
tarfile.TarError
└── HeaderTooLarge                         a tar's extended header past `bounded_tar`'s limits (callers reword it)

Each domain lists its exceptions in its own `errors.py`, whose docstring draws its part of the tree. A
PackyardError carries its status; `http_errors.py` turns it into the repository's response, and the Connect API
(`publishing/connect/routing.py`) and the pages (`web/error_pages.py`) render it their own way. The CLI prints
`str(error)` as it is.
"""

from __future__ import annotations

import tarfile


class PackyardError(Exception):
    """Something a user can fix or must know, said in `message`; raised by every domain."""

    status_code = 400
    headers: dict[str, str] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DatabaseUnavailable(PackyardError):
    """The database refused a connection or lost one mid-request (a PostgreSQL restart, a network cut), raised by
    `Database.session()`. The transaction did not commit unless the connection broke during COMMIT itself, and
    every write of Packyard's may be sent again (an identical re-upload answers 200), so clients retry; the pool
    reconnects by itself once the database answers."""

    status_code = 503
    headers = {"Retry-After": "5"}

    def __init__(self, reason: str) -> None:
        super().__init__(f"The database is unavailable ({reason}); try again shortly.")
        self.reason = reason


class ConfigError(Exception):
    """The configuration file or an override has a bad value; the server or command refuses to start."""


class HeaderTooLarge(tarfile.TarError):
    """An extended tar header (pax, GNU long name or link) past a limit of `bounded_tar`, raised before its data is
    read; the upload and bundle code say which archive it was in.

    Not a `tarfile.HeaderError`: tarfile rewords those into a generic ReadError, which would lose this message."""
