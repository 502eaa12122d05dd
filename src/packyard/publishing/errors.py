"""Errors of the publishing domain.

PublishingError                 400
├── NotFound                    404  no such content, bundle, task, user or key
├── Forbidden                   403  the key's user may not do this
├── Conflict                    409  a user by that name already exists
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
