"""The root of every error Packyard reports to a user.

PackyardError
├── repository.errors.RepositoryError      (sources, repositories, uploads)
├── auth.errors.AuthError                  (credentials, tokens, scopes)
└── storage.interfaces.BlobNotFound        (500: no committed blob for a digest)

Each carries the HTTP status it maps to; HTTP handlers and the CLI render `str(error)` as it is.
"""

from __future__ import annotations


class PackyardError(Exception):
    status_code = 400
    headers: dict[str, str] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
