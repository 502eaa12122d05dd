"""Errors of the web pages: what a page route raises of its own (domain errors reach the pages as they are).

PackyardError
├── PageError          any   a page's own refusal with its status (bad form input, no such tab, a 404)
├── SignInRequired     401   an anonymous visitor asked for a page that needs a user (GET: sent to sign in)
└── CsrfRejected       403   a POST without the form's current CSRF token; nothing was changed

`error_pages.py` renders these and every other error of a page route as an HTML page.
"""

from __future__ import annotations

from packyard.errors import PackyardError


class PageError(PackyardError):
    """A page route refuses with its own message and status (bad input, a tab that does not exist, a 404)."""

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
    """A POST without the form's current CSRF token (or the login form's cookie); nothing was changed."""

    status_code = 403

    def __init__(self) -> None:
        super().__init__(
            "The form's security token is missing or out of date, so nothing was changed; "
            "reload the page and submit the form again."
        )
