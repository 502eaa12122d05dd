"""How each app mode runs: what Packyard installs beside the bundle's requirements, how harness.py serves it,
and how it learns its URL. Everything that differs between app modes is in the one table below.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Launcher:
    mode: str  # manifest `metadata.appmode`
    name: str  # what the deploy log calls it
    kind: str  # what harness.py runs: asgi, wsgi, dash, streamlit or bokeh
    packages: tuple[str, ...]  # installed beside the bundle's requirements
    # The app is told its URL prefix when it starts (Dash builds its request URLs, Bokeh its routes from it),
    # so a process started for a draft's `/_bundle<id>/` URL cannot become the active one.
    prefix_at_start: bool = False
    # Its routes include the prefix, so the proxy forwards the full path instead of stripping the prefix.
    full_path: bool = False


LAUNCHERS: dict[str, Launcher] = {
    launcher.mode: launcher
    for launcher in (
        Launcher("python-fastapi", "FastAPI (ASGI) API", "asgi", ("uvicorn",)),
        Launcher("python-api", "WSGI API", "wsgi", ("uvicorn", "a2wsgi")),
        # Dash's Flask server under uvicorn; Dash reads its request prefix from the environment when built.
        Launcher("python-dash", "Dash app", "dash", ("uvicorn", "a2wsgi"), prefix_at_start=True),
        # Shiny and Shiny Express apps are ASGI apps; their pages use relative URLs.
        Launcher("python-shiny", "Shiny app", "asgi", ("uvicorn",)),
        # Streamlit's page finds its base path from the browser's URL, so the prefix can be stripped.
        Launcher("python-streamlit", "Streamlit app", "streamlit", ()),
        Launcher("python-bokeh", "Bokeh app", "bokeh", (), prefix_at_start=True, full_path=True),
    )
}
KINDS = frozenset(launcher.kind for launcher in LAUNCHERS.values())
