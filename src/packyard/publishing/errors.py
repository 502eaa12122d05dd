"""Errors of the publishing domain: content, bundles, deploys, environments, the proxy, users and keys.

PackyardError
└── PublishingError             400  (base) a request the platform refuses; Connect's code 3
    ├── NotFound                404  no such content, bundle, task, user or key (code 4)
    ├── Forbidden               403  the key's user may not do this (code 6)
    ├── InvalidKey              401  no key, or one that is not valid (code 30)
    ├── SignInFirst             303  a browser without a session asked for content: to /login?next=, and back
    ├── ContentElsewhere        303  content asked for on the main origin, served on `[server] content_address`
    ├── BadTicket               403  a content-origin ticket that is unknown, used or expired
    ├── BadContentTarget        400  a ticket's `next` that is not a content path: no redirect off it
    ├── BadCredentials          401  a web sign-in with an unknown user or a wrong password
    ├── SignInRefused           400  a sign-in through the OpenID provider that fails a check (its error, the state,
    │                                the code); the message says which
    ├── TooManySignIns          429  too many failed sign-ins for a user name or from an address (Retry-After)
    ├── Conflict                409  a user by that name already exists
    ├── NameInUse               409  the owner already has content of that name (code 26)
    ├── ContentLocked           409  locked content takes no deploys or changes until it is unlocked
    ├── ActiveBundle            400  the active bundle cannot be deleted (code 75)
    ├── RuntimeSettingError     400  a runtime setting that is not valid or over the server's cap
    ├── ClientSilent            408  the client sent none of its request body for `read_timeout` seconds
    ├── BundleError             400  a bundle that cannot be deployed: its archive or its manifest.json
    ├── BundleTooLarge          413  an uploaded bundle over `[publishing] bundle_max_size`
    ├── EnvironmentBuildError   400  no matching Python, or the install failed
    ├── AppStartError           400  the app did not start or did not answer
    ├── AppUnavailable          502  the proxy could not reach a running app process
    │   └── AppSilent           504  the app sent nothing for `connection_timeout` seconds
    ├── RenderError             400  a notebook or Quarto render failed, or its renderer is missing
    ├── SandboxError            503  content cannot run sandboxed here: no bubblewrap, namespaces refused, no run_as
    └── Busy                    503  every process of the content is full and no other may start

EnvironmentLocked                    another build or removal holds an environment's lock (`env prune` skips it)
RepackError                          an installed runtime package cannot be packed back into a wheel faithfully

The Connect API renders each as Connect's error body, `{"error": message, "code": n, "payload": null}`
(`connect/routing.py`); the proxy answers with `http_errors.send_error`. Two exceptions stay where they are
raised: `runtime/harness.py`'s EntrypointError (the harness runs in the app's interpreter with the standard
library only) and `proxy/http.py`'s private `_NoResponse` (the app closed a connection; it never leaves the
module).
"""

from __future__ import annotations

from urllib.parse import quote

from packyard.errors import PackyardError


class PublishingError(PackyardError):
    """Anything the publishing platform refuses; catch this for every error below."""

    code = 3  # Connect's generic "internal" code; subclasses use Connect's own where one exists


class NotFound(PublishingError):
    """No such content, bundle, task, user or key (or one the caller may not see)."""

    status_code = 404
    code = 4


class Forbidden(PublishingError):
    """The caller's user may not do this to this content (not its owner, collaborator or an admin)."""

    status_code = 403
    code = 6


class SignInRefused(PublishingError):
    """A sign-in through the OpenID provider stopped: the provider answered with an error, the state or its cookie is
    missing, expired or not this browser's, or the code was refused; nobody is signed in."""


class Conflict(PublishingError):
    """A user by that name already exists."""

    status_code = 409


class BundleError(PublishingError):
    """A bundle that cannot be deployed: its archive, its manifest.json or its entry point."""


class BundleTooLarge(PublishingError):
    """An uploaded bundle (its Content-Length, or the bytes received so far) over `[publishing] bundle_max_size`."""

    status_code = 413


class EnvironmentBuildError(PublishingError):
    """No interpreter matches the bundle's Python, or installing its requirements failed."""


class AppStartError(PublishingError):
    """The app's process exited or did not answer within the start timeout."""


class AppUnavailable(PublishingError):
    """The proxy could not reach a running app process, or it did not answer."""

    status_code = 502


class AppSilent(AppUnavailable):
    """The app sent nothing on a proxied connection for `connection_timeout` seconds; the proxy cut it."""

    status_code = 504


class SandboxError(PublishingError):
    """Content cannot run sandboxed here (no bubblewrap, namespaces refused, no `run_as` user)."""

    status_code = 503


class RenderError(PublishingError):
    """A notebook or Quarto render failed, or its renderer is missing."""


class SignInFirst(PublishingError):
    """A browser asked for content it may see only signed in: it is sent to the sign-in page, and back. On the
    content origin, `to` is the main origin's ticket endpoint (which signs in first when it must)."""

    status_code = 303

    def __init__(self, path: str, to: str = "/login") -> None:
        location = f"{to}?next={quote(path, safe='/')}"
        super().__init__(f"Sign in to see {path}: {location}")
        self.headers = {"location": location, "cache-control": "no-store"}


class ContentElsewhere(PublishingError):
    """A browser asked the main origin for content, which `[server] content_address` serves: the same path there
    (303 for GET and HEAD, 307 keeping the method and body for others)."""

    status_code = 303

    def __init__(self, url: str, method: str) -> None:
        super().__init__(f"Content is served on its own origin: {url}")
        self.status_code = 303 if method in ("GET", "HEAD") else 307
        self.headers = {"location": url, "cache-control": "no-store"}


class BadTicket(PublishingError):
    """A ticket to the content origin that is unknown, already used or expired; no session is made."""

    status_code = 403


class BadContentTarget(PublishingError):
    """Where a ticket would lead that is not a content path of this server (another host, `//`, a page): the
    ticket endpoints redirect only to `/content/...`."""


class Busy(PublishingError):
    """Every process of the content is full, no other may start, and the request waited `queue_timeout`."""

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


class TooManySignIns(PublishingError):
    """Too many failed web sign-ins for the user name or from the client's address: none is checked, not even a
    right password, until `retry_after` seconds have passed."""

    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"retry-after": str(retry_after)}


class NameInUse(PublishingError):
    """Connect's code 26: the owner already has content of that name."""

    status_code = 409
    code = 26


class ContentLocked(PublishingError):
    """Locked content (Connect's `locked`) takes no deploys or changes but its unlocking."""

    status_code = 409


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


class EnvironmentLocked(Exception):
    """Another build or removal holds the environment's lock (`EnvironmentFolder.locked(key, wait=False)`)."""


class RepackError(Exception):
    """An installed distribution that cannot be packed back into a wheel faithfully (a file missing or changed);
    the runtime's wheels leave it out and the content takes it from its repository."""
