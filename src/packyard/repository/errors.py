"""Errors of the repository domain.

RepositoryError
├── NotFound                 404  unknown source, repository, project or file
├── Conflict                 409  a source or repository name already taken
├── InvalidName              400  a source or repository name that cannot appear in a URL
├── MethodNotAllowed         405  a write sent to a read-only URL (uv explains a 405 on upload)
├── NotAcceptable            406  no media type in `Accept` or `?format=` is served
├── InvalidQuery             400  a query parameter the simple index cannot read (two formats)
├── Blocked                  403  policy blocks the file
├── UpstreamUnavailable      502  a mirror's upstream failed and nothing is cached
└── UploadRejected           400  the upload breaks a rule; nothing was stored
    ├── FileAlreadyExists    400  same filename, different bytes (twine and poetry match the text)
    ├── FileTooLarge         413
    └── ActionGone           410  `:action` values PyPI retired
"""

from __future__ import annotations

from packyard.errors import PackyardError


class RepositoryError(PackyardError):
    pass


class NotFound(RepositoryError):
    status_code = 404


class Conflict(RepositoryError):
    status_code = 409


class InvalidName(RepositoryError):
    status_code = 400


class MethodNotAllowed(RepositoryError):
    status_code = 405
    headers = {"allow": "GET, HEAD"}


class UploadRejected(RepositoryError):
    status_code = 400


class FileAlreadyExists(UploadRejected):
    """Same filename, different content. The message must start with `File already exists`."""


class FileTooLarge(UploadRejected):
    status_code = 413


class ActionGone(UploadRejected):
    status_code = 410


class Blocked(RepositoryError):
    """Policy blocks this file; the message names the rule and its reason."""

    status_code = 403


class UpstreamUnavailable(RepositoryError):
    """A mirror could not reach its upstream and has no cached copy to serve."""

    status_code = 502


class NotAcceptable(RepositoryError):
    status_code = 406
    headers = {"vary": "Accept"}


class InvalidQuery(RepositoryError):
    status_code = 400
