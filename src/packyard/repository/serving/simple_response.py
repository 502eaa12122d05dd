"""The one answer to a simple-index page request, given its page: which format (`?format=` or `Accept`, PEP 691),
406 for none served, 304 for a matching `If-None-Match`, and the cache and `Vary` headers.

The raw-ASGI hot path (`hot_path.py`) and the FastAPI routes (`routes.py`) both call `answer`, so a request
gets the same status, headers and body whichever of them serves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from packyard.repository.errors import InvalidQuery, NotAcceptable
from packyard.repository.index.page_cache import CachedPage
from packyard.repository.index.pages import HTML_TYPE, JSON_TYPE
from packyard.repository.serving.negotiation import TEXT_HTML, negotiate

_VARY = (b"vary", b"Accept")
# Clients revalidate with If-None-Match on every resolve, so a new upload is visible at once.
_PUBLIC = (b"cache-control", b"max-age=0, must-revalidate")
_PRIVATE = (b"cache-control", b"private, max-age=0, must-revalidate")
_STALE = (b"warning", b'110 - "Response is Stale"')
_CONTENT_TYPES = {JSON_TYPE: JSON_TYPE.encode(), HTML_TYPE: HTML_TYPE.encode(), TEXT_HTML: b"text/html; charset=utf-8"}
_QUOTE_LIMIT = 200


# Not frozen: on the hot path a frozen dataclass's __init__ (object.__setattr__ per field) is a measurable share.
@dataclass(slots=True)
class PageRequest:
    """What of a request decides the answer: its method, query (for `?format=`), `Accept` and `If-None-Match`; and
    its `Authorization`, read in the same pass over the headers for the hot path's access check. The query is read
    only when answering, so a bad `?format=` is reported after the access check, as before."""

    method: str
    query: bytes
    accept: str | None
    if_none_match: bytes | None
    authorization: str | None = None

    @classmethod
    def of(cls, scope: Scope) -> PageRequest:
        accept = if_none_match = authorization = None
        for key, value in scope["headers"]:
            if key == b"accept":
                accept = value.decode("latin-1")
            elif key == b"if-none-match":
                if_none_match = value
            elif key == b"authorization":
                authorization = value.decode("latin-1")
        return cls(scope["method"], scope.get("query_string", b""), accept, if_none_match, authorization)


@dataclass(slots=True)
class PageAnswer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class PageAnswerResponse(Response):
    """A `PageAnswer` as a Starlette response, for the routes: sent exactly as the hot path sends it."""

    def __init__(self, answer: PageAnswer) -> None:
        self.answer = answer
        self.status_code = answer.status
        self.body = answer.body
        self.raw_headers = list(answer.headers)
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.answer.send(send)


def format_parameter(query: bytes) -> str | None:
    """The `format` query parameter, or None when absent or empty. A `+` stays a `+` (it is part of every PEP 691
    type, and a browser's address bar sends it unencoded); other parameters are ignored."""
    if not query:
        return None
    found: list[str] = []
    for pair in query.decode("latin-1").split("&"):
        key, _, value = pair.partition("=")
        if unquote(key) == "format":
            found.append(unquote(value))
    values = {v for v in found if v}
    if len(values) > 1:
        shown = ", ".join(f"`{v[:_QUOTE_LIMIT]}`" for v in sorted(values))
        raise InvalidQuery(
            f"The query names several formats ({shown}); give `?format=` once, e.g. `?format={JSON_TYPE}`."
        )
    return values.pop() if values else None


def media_type(request: PageRequest) -> str:
    """The type to answer with: `?format=` wins over `Accept`; NotAcceptable when neither names a served type."""
    chosen = format_parameter(request.query) if request.query else None
    wanted = chosen if chosen is not None else request.accept
    media = negotiate(wanted)
    if media is None:
        where = f"`?format={wanted}`" if chosen is not None else f"`Accept: {wanted}`"
        if len(where) > _QUOTE_LIMIT:
            where = where[:_QUOTE_LIMIT] + "…`"
        raise NotAcceptable(
            f"No media type in {where} is served here; ask for `{JSON_TYPE}`, `{HTML_TYPE}` or `{TEXT_HTML}` "
            "(in `Accept` or as `?format=`)."
        )
    return media


def answer(page: CachedPage, request: PageRequest, authenticated: bool, stale: str | None = None) -> PageAnswer:
    """200 with the page in the negotiated format (no body for HEAD), or 304 when `If-None-Match` matches.

    Raises NotAcceptable (406) and InvalidQuery (400), which the caller renders at its error boundary."""
    media = media_type(request)
    if media == JSON_TYPE:
        body, etag, length = page.json, page.json_etag, page.json_length
    else:
        body, etag, length = page.html, page.html_etag, page.html_length
    headers = [(b"etag", etag), _VARY, _PRIVATE if authenticated else _PUBLIC]
    if stale:
        headers.append(_STALE)
    if request.if_none_match is not None and etag_matches(etag, request.if_none_match):
        return PageAnswer(304, headers, b"")
    headers += [(b"content-type", _CONTENT_TYPES[media]), (b"content-length", length)]
    return PageAnswer(200, headers, b"" if request.method == "HEAD" else body)


def etag_matches(etag: bytes, if_none_match: bytes) -> bool:
    """RFC 9110 weak comparison against an `If-None-Match` list (or `*`)."""
    tags = [tag.strip() for tag in if_none_match.split(b",")]
    return b"*" in tags or any(tag.removeprefix(b"W/") == etag for tag in tags)
