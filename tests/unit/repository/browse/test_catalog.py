"""What the package pages compute without a server: the latest version, search order, descriptions rendered as
Warehouse renders them, summaries and PKG-INFO from real distributions."""

from __future__ import annotations

import io
from pathlib import Path

from packyard.repository.browse.catalog import ProjectEntry, latest_installable, search
from packyard.repository.browse.descriptions import parse, read_pkg_info, render_description, summary_of
from tests.dists import make_sdist


def test_latest_is_the_newest_installable_final_release() -> None:
    assert latest_installable({"1.0": True, "2.0b1": True, "1.1": False}) == "1.0"
    assert latest_installable({"2.0b1": True, "2.0a1": True}) == "2.0b1"  # only pre-releases: the newest
    assert latest_installable({"1.0": False}) == ""  # every version yanked or blocked
    assert latest_installable({"1.10": True, "1.9": True}) == "1.10"  # versions compare as versions


def entry(name: str, summary: str = "") -> ProjectEntry:
    return ProjectEntry(name, name, "1.0", summary, None)


def test_search_ranks_the_exact_name_first_then_names_then_summaries() -> None:
    entries = [
        entry("fast-json", "JSON, but faster"),
        entry("json-tools"),
        entry("json"),
        entry("orjson"),
        entry("yaml", "reads json too"),
        entry("toml"),
    ]
    assert [e.name for e in search(entries, "JSON")] == ["json", "json-tools", "fast-json", "orjson", "yaml"]
    assert [e.name for e in search(entries, "Fast_JSON")] == ["fast-json"]  # names compare normalized
    assert [e.name for e in search(entries, "json faster")] == ["fast-json"]  # every word must match
    assert search(entries, "   ") == entries


def test_markdown_is_rendered_and_sanitized() -> None:
    html = render_description(
        "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>alert(1)</script>\n"
        '<img src="logo.png">\n\n[x](javascript:alert(1))\n',
        "text/markdown; charset=UTF-8; variant=GFM",
    )
    assert "<h3" in html and "<h1" not in html  # under the page's own headings
    assert "<table>" in html  # GitHub-flavoured
    assert "<script" not in html and "javascript:" not in html
    assert '<img alt="" src="logo.png">' in html
    assert 'href="#' not in html  # empty permalink anchors are dropped


def test_restructured_text_falls_back_to_plain_text_when_it_does_not_parse() -> None:
    assert "<strong>bold</strong>" in render_description("Title\n=====\n\nSome **bold**.\n", "")
    raw = render_description("T\n=\n\n.. raw:: html\n\n   <script>x()</script>\n", "text/x-rst")
    assert "<script" not in raw and "&lt;script&gt;" in raw
    assert render_description("a < b\nc", "text/plain") == "a &lt; b<br>c"


def test_summary_and_metadata_of_a_real_sdist(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "meta-demo", "1.0", requires=["depone>=1"])
    with sdist.open("rb") as file:
        data = read_pkg_info(file, sdist.name)
    assert data is not None
    assert summary_of(data) == "Test package meta-demo"
    meta = parse(data)
    assert meta.summary == "Test package meta-demo" and meta.requires_dist == ("depone>=1",)
    assert read_pkg_info(io.BytesIO(b"not an archive"), "broken.tar.gz") is None
    # A `Summary:` line in the description body is not the summary.
    assert summary_of(b"Name: x\nVersion: 1\n\nSummary: from the body\n") == ""
