"""Errors of the publishing domain.

PublishingError                 400
├── NotFound                    404  no such content, bundle, task, user or key
├── Forbidden                   403  the key's user may not do this
├── InvalidKey                  401  no key, or one that is not valid (Connect's code 30)
├── BadCredentials              401  a web sign-in with an unknown user or a wrong password
├── Conflict                    409  a user by that name already exists
├── NameInUse                   409  the owner already has content of that name (code 26)
├── ActiveBundle                400  the active bundle cannot be deleted (code 75)
├── RuntimeSettingError         400  a runtime setting that is not valid or over the server's cap
├── ClientSilent                408  the client sent none of its request body for `read_timeout` seconds
├── BundleError                 400  a bundle that cannot be deployed: its archive or its manifest.json
├── EnvironmentBuildError       400  no matching Python, or the install failed
├── AppStartError               400  the app did not start or did not answer
├── AppUnavailable              502  the proxy could not reach a running app process
├── RenderError                 400  a notebook or Quarto render failed, or its renderer is missing
└── Busy                        503  every process of the content is full and no other may start

The API renders each as Connect's error body, `{"error": message, "code": n, "payload": null}`.
"""

from __future__ import annotations

from packyard.errors import PackyardError


class PublishingError(PackyardError):
    code = 3  # Connect's generic "internal" code; subclasses use Connect's own where one exists


class NotFound(PublishingError):
    status_code = 404
    code = 4


class Forbidden(PublishingError):
    status_code = 403
    code = 6


class Conflict(PublishingError):
    status_code = 409


class BundleError(PublishingError):
    pass


class EnvironmentBuildError(PublishingError):
    pass


class AppStartError(PublishingError):
    pass


class AppUnavailable(PublishingError):
    """The app process did not answer."""

    status_code = 502


class RenderError(PublishingError):
    pass


class Busy(PublishingError):
    status_code = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"retry-after": str(retry_after)}


class InvalidKey(PublishingError):
    """Connect's code 30: rsconnect prints `The specified API key is not valid.`"""

    status_code = 401
    code = 30


class BadCredentials(PublishingError):
    """Unknown user and wrong password read the same, so the page does not tell which names exist."""

    status_code = 401


class NameInUse(PublishingError):
    """Connect's code 26: the owner already has content of that name."""

    status_code = 409
    code = 26


class ActiveBundle(PublishingError):
    """Connect's code 75: the active bundle cannot be deleted."""

    code = 75


class RuntimeSettingError(PublishingError):
    """A runtime setting that is not valid or is over the server's cap; `code` is Connect's for the rule, `field`
    the setting it is about (a form shows the message beside it)."""

    def __init__(self, message: str, code: int = 25, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class ClientSilent(PublishingError):
    """The client sent none of its request body for `read_timeout` seconds."""

    status_code = 408
