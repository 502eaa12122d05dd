"""The errors page routes raise; `error_pages.py` turns them (and any other) into pages."""

from __future__ import annotations

from packyard.errors import PackyardError


class PageError(PackyardError):
    """An error a page route raises with its status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status_code = status


class SignInRequired(PackyardError):
    """An anonymous visitor asked for a page that needs a user: they are sent to sign in, then back."""

    status_code = 401

    def __init__(self, path: str) -> None:
        super().__init__("Sign in to see this page.")
        self.path = path


class CsrfRejected(PackyardError):
    status_code = 403

    def __init__(self) -> None:
        super().__init__(
            "The form's security token is missing or out of date, so nothing was changed; "
            "reload the page and submit the form again."
        )
