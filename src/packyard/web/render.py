"""Templates to responses: every page gets the user, the CSRF token and its nav section, and the same headers."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from packyard import __version__, formatting
from packyard.web.assets import static_url
from packyard.web.session import context as context_of
from packyard.web.session import csrf_token, current_user, keep_pre_session_token

TEMPLATES = Path(__file__).parent / "templates"
SECTIONS = ("home", "packages", "content", "admin", "profile")
# No inline script or style anywhere: packyard.js and packyard.css are the only code a page runs.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    # Pages show one user's view and their CSRF token, sometimes a secret once: no cache may keep them.
    "cache-control": "no-store",
}
_csrf: ContextVar[str] = ContextVar("packyard_csrf", default="")


def when(value: datetime | None, never: str = "never") -> Markup:
    """A time as `<time>`, to the minute in UTC; `never` (muted) for None."""
    if value is None:
        return Markup('<span class="muted">{}</span>').format(never)
    return Markup('<time datetime="{}">{}</time>').format(value.isoformat(), formatting.moment(value))


def code(text: str) -> Markup:
    """A message with its `backticked` names and commands set as code."""
    return Markup("").join(
        Markup("<code>{}</code>").format(part) if is_code else Markup.escape(part)
        for part, is_code in formatting.code_spans(text)
    )


@cache
def _headers(content_address: str) -> dict[str, str]:
    """SECURITY_HEADERS; with a content origin, forms may end there too: the login form's redirect goes on through a
    content ticket to the content origin, and Chromium applies `form-action` to every redirect after a submission."""
    if not content_address:
        return SECURITY_HEADERS
    policy = SECURITY_HEADERS["content-security-policy"].replace(
        "form-action 'self'", f"form-action 'self' {content_address}"
    )
    return {**SECURITY_HEADERS, "content-security-policy": policy}


def _csrf_input() -> Markup:
    """The hidden CSRF field of the page being rendered (works in macros imported without context)."""
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(_csrf.get())


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(static_url=static_url, csrf_input=_csrf_input, version=__version__)
    env.globals.update(when=when, code=code, size=formatting.size, ago=formatting.ago, day=formatting.day)
    return env


def render(request: Request, template: str, *, section: str, status: int = 200, **context: Any) -> HTMLResponse:
    assert section in SECTIONS, f"section must be one of {SECTIONS}, not {section!r}"
    token = csrf_token(request)
    values: dict[str, Any] = {"request": request, "user": current_user(request), "csrf_token": token}
    values["section"] = section
    values["status"] = status
    values.update(context)
    reset = _csrf.set(token)
    try:
        html = environment().get_template(template).render(values)
    finally:
        _csrf.reset(reset)
    response = HTMLResponse(
        html, status_code=status, headers=_headers(context_of(request).settings.server.content_address)
    )
    keep_pre_session_token(request, response)
    return response
