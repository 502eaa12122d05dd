"""The app-mode table and how the harness finds an app's script: the cheap checks beside test_apps.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from packyard.publishing.deploy.launchers import KINDS, LAUNCHERS
from packyard.publishing.runtime import harness


def test_every_launcher_runs_a_kind_the_harness_knows() -> None:
    assert set(harness.KINDS) == KINDS
    # A prefix baked in at start is what makes a draft unpromotable; only Bokeh's routes carry it.
    assert {m for m, launcher in LAUNCHERS.items() if launcher.prefix_at_start} == {"python-dash", "python-bokeh"}
    assert {m for m, launcher in LAUNCHERS.items() if launcher.full_path} == {"python-bokeh"}


@pytest.mark.parametrize(
    ("files", "entrypoint", "kind", "expected"),
    [
        (["app.py"], "app", "streamlit", "app.py"),  # what rsconnect writes for app.py
        (["app.py"], "app:app", "streamlit", "app.py"),
        (["dashboard.py"], "dashboard.py", "streamlit", "dashboard.py"),
        (["pages/home.py"], "pages.home", "streamlit", "pages/home.py"),
        (["app.py"], "app", "bokeh", "app.py"),
        (["main.py", "templates/index.html"], "main", "bokeh", "."),  # Bokeh's directory format
        (["viz/main.py"], "viz", "bokeh", "viz"),
    ],
)
def test_script_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: list[str], entrypoint: str, kind: str, expected: str
) -> None:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    monkeypatch.chdir(tmp_path)
    assert harness.script_path(entrypoint, kind) == expected


def test_a_missing_script_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(harness.EntrypointError) as exc:
        harness.script_path("streamlit_app", "streamlit")
    assert str(exc.value) == (
        "Entry point `streamlit_app`: the bundle has no file `streamlit_app.py`; deploy the folder that holds it, "
        "or name it with `--entrypoint`."
    )
