"""Errors of the repository domain: sources, repositories, the simple index, files and uploads.

PackyardError
└── RepositoryError              400  (base; not raised itself)
    ├── NotFound                 404  unknown source, repository, project or file
    │   └── VersionNotFound      404  a project page asks for a version the repository does not serve
    ├── Conflict                 409  a source or repository name already taken
    ├── InvalidName              400  a source or repository name that cannot appear in a URL
    ├── MethodNotAllowed         405  a write sent to a read-only URL (uv explains a 405 on upload)
    ├── NotAcceptable            406  no media type in `Accept` or `?format=` is served
    ├── InvalidQuery             400  a query parameter that cannot be read (two formats, an unknown `?os=`)
    ├── Blocked                  403  policy blocks the file
    ├── UpstreamUnavailable      502  a mirror's upstream failed and nothing is cached
    └── UploadRejected           400  the upload breaks a rule; nothing was stored
        ├── FileAlreadyExists    400  same filename, different bytes (twine and poetry match the text)
        ├── FileTooLarge         413  over `[upload] max_file_size`
        └── ActionGone           410  `:action` values PyPI retired

ClientDisconnected                    the uploader went away mid-body (never answered: nobody is listening)

The repository answers problem+json or text with the message as the reason phrase (`http_errors.py`).
"""

from __future__ import annotations

from packyard.errors import PackyardError


class RepositoryError(PackyardError):
    """Anything the repository refuses; catch this for every error below."""


class NotFound(RepositoryError):
    """An unknown source, repository, project, snapshot date or file; the message names what exists."""

    status_code = 404


class VersionNotFound(NotFound):
    """`catalog.project_detail` was asked for a version the repository does not serve."""


class Conflict(RepositoryError):
    """A source or repository name is already taken."""

    status_code = 409


class InvalidName(RepositoryError):
    """A source or repository name that cannot appear in a URL."""

    status_code = 400


class MethodNotAllowed(RepositoryError):
    """A write sent to a read-only URL, such as an upload to the simple index (uv explains a 405 on upload)."""

    status_code = 405
    headers = {"allow": "GET, HEAD"}


class UploadRejected(RepositoryError):
    """The upload breaks a rule (shape, filename, digests, metadata, state); nothing was stored."""

    status_code = 400


class FileAlreadyExists(UploadRejected):
    """Same filename, different content. The message must start with `File already exists`."""


class FileTooLarge(UploadRejected):
    """The upload is over `[upload] max_file_size`."""

    status_code = 413


class ActionGone(UploadRejected):
    """An `:action` value PyPI retired (`submit`, `doc_upload`, ...)."""

    status_code = 410


class Blocked(RepositoryError):
    """Policy blocks this file; the message names the rule and its reason."""

    status_code = 403


class UpstreamUnavailable(RepositoryError):
    """A mirror could not reach its upstream and has no cached copy to serve."""

    status_code = 502


class NotAcceptable(RepositoryError):
    """No media type in the request's `Accept` is one the simple index serves."""

    status_code = 406
    headers = {"vary": "Accept"}


class InvalidQuery(RepositoryError):
    """A query parameter that cannot be read: two different `?format=` values, an unknown `/__api__/download?os=`."""

    status_code = 400


class ClientDisconnected(Exception):
    """The uploader went away before sending the whole body; the upload endpoint discards it and answers nothing."""
