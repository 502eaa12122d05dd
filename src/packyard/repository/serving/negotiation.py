"""PEP 691 content negotiation: pick JSON, v1 HTML or text/html from an `Accept` header."""

from __future__ import annotations

from functools import lru_cache

from packyard.repository.index.pages import HTML_TYPE, JSON_TYPE

TEXT_HTML = "text/html"
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_TYPE,
    "application/vnd.pypi.simple.latest+html": HTML_TYPE,
}
# Preference among explicit matches of equal quality: the most expressive format first.
_PREFERENCE = (JSON_TYPE, HTML_TYPE, TEXT_HTML)


def _ranges(accept: str) -> list[tuple[str, float]]:
    out = []
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        out.append((_ALIASES.get(media.lower(), media.lower()), q))
    return out


@lru_cache(maxsize=512)
def negotiate(accept: str | None) -> str | None:
    """The media type to answer with, or None for 406. No `Accept`, or only wildcards, means `text/html`."""
    if not accept:
        return TEXT_HTML
    ranges = _ranges(accept)
    best: tuple[float, int, int] | None = None
    choice = None
    for rank, candidate in enumerate(_PREFERENCE):
        major = candidate.split("/")[0]
        exact = [q for media, q in ranges if media == candidate]
        if exact:
            q, explicit = max(exact), 1
        else:
            wild = [q for media, q in ranges if media in ("*/*", f"{major}/*")]
            if not wild:
                continue
            # A wildcard alone should not pick JSON for a browser or curl: text/html is the safe answer.
            q, explicit = max(wild), 0
            rank = {TEXT_HTML: 0, HTML_TYPE: 1, JSON_TYPE: 2}[candidate]
        if q <= 0:
            continue
        key = (q, explicit, -rank)
        if best is None or key > best:
            best, choice = key, candidate
    return choice
