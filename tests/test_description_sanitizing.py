"""A package description written to attack the project page: uploaded with twine to a real server, and the page
read back over HTTP. Whatever the Markdown holds, the rendered description has no script, no event handler, no
script URL and no element whose content a browser parses differently from what the sanitizer saw."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, _start
from tests.dists import make_wheel

# Each line is a way Markdown has been used to get live HTML through a sanitizer: raw tags, event handlers, script
# URLs (plain, entity-encoded, with a tab inside), and the mutation-XSS shapes that rely on a browser re-parsing
# the sanitized output (foreign content: svg and math; raw-text elements: noscript, style, xmp, template).
HOSTILE_MARKDOWN = """\
# Sanitized

Some *emphasis*.

<script>window.pwned = "script"</script>
<img src="x" onerror="window.pwned = 'img'">
[link](javascript:window.pwned=1) and ![image](javascript:window.pwned=2)
<a href="&#106;avascript:window.pwned=3">entity</a> <a href="jav&#x09;ascript:window.pwned=4">tab</a>
<a href="data:text/html,<script>window.pwned=5</script>">data</a>
<svg><script>window.pwned = 6</script></svg>
<svg onload="window.pwned = 7"></svg>
<math><mtext><table><mglyph><style><img src=x onerror="window.pwned = 8"></style></mglyph></table></mtext></math>
<noscript><p title="</noscript><img src=x onerror='window.pwned = 9'>"></p></noscript>
<iframe srcdoc="<script>window.pwned = 10</script>"></iframe>
<details open ontoggle="window.pwned = 11"><summary>details</summary></details>
<form action="javascript:window.pwned=12"><button>go</button></form>
<style>body { background: url(javascript:window.pwned=13) }</style>
<object data="javascript:window.pwned=14"></object>
<p style="background: url(javascript:window.pwned=15)">styled</p>
<select><template><style><img src=x onerror="window.pwned = 16"></style></template></select>
<xmp><img src=x onerror="window.pwned = 17"></xmp>
<base href="javascript:window.pwned=18//">
"""
# Elements that run code, load a document, or hold raw text that a browser parses differently from the sanitizer.
FORBIDDEN_TAGS = {
    "script", "iframe", "frame", "object", "embed", "svg", "math", "style", "noscript", "xmp", "template",
    "noembed", "noframes", "plaintext", "form", "base", "meta", "link", "textarea", "title",
}  # fmt: skip
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "background", "poster", "srcset", "xlink:href"}


class Elements(HTMLParser):
    """Every start tag with its attributes (entities decoded, as a browser decodes them)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _start(tmp_path_factory.mktemp("packyard-descriptions"), "")
    try:
        yield srv
    finally:
        srv.stop()


def description_of(page: str) -> str:
    start = page.index('<div class="description">')
    return page[start : page.index("</div>", start)]


@pytest.mark.parametrize("variant", ["GFM", "CommonMark"])
def test_a_hostile_markdown_description_has_nothing_live_on_the_page(
    server: Server, tmp_path: Path, variant: str
) -> None:
    name = f"hostile-readme-{variant.lower()}"
    metadata = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\nSummary: A hostile README\n"
        f"Description-Content-Type: text/markdown; variant={variant}\n\n{HOSTILE_MARKDOWN}"
    )
    server.twine(make_wheel(tmp_path, name, "1.0", metadata=metadata))
    response = httpx.get(f"{server.url}/repos/pypi/packages/{name}/", timeout=30)
    assert response.status_code == 200, response.text
    description = description_of(response.text)
    parser = Elements()
    parser.feed(description)
    tags = [tag for tag, _ in parser.tags]
    assert "h3" in tags and "em" in tags and "img" in tags, description  # the Markdown was rendered, not dropped
    assert not FORBIDDEN_TAGS & set(tags), description
    for tag, attrs in parser.tags:
        assert not [a for a in attrs if a.startswith("on") or a == "style"], (tag, attrs)
        for attr in URL_ATTRIBUTES & set(attrs):
            url = "".join(ch for ch in attrs[attr] if ch > " ").lower()  # browsers skip tabs and spaces in a scheme
            assert not url.startswith(("javascript:", "vbscript:", "data:")), (tag, attrs)
