"""A bundle's `manifest.json`: the app modes Connect knows and the fields Packyard reads (connect-api.md 6.2-6.4)."""

from __future__ import annotations

import difflib
import json
import posixpath
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from packyard.publishing.errors import BundleError

# Connect's ordinals (models.py:AppModes in rsconnect-python); v0 APIs send the number, v1 the string.
APP_MODES: dict[str, int] = {
    "unknown": 0,
    "shiny": 1,
    "rmd-shiny": 2,
    "rmd-static": 3,
    "static": 4,
    "api": 5,
    "tensorflow-saved-model": 6,
    "jupyter-static": 7,
    "python-api": 8,
    "python-dash": 9,
    "python-streamlit": 10,
    "python-bokeh": 11,
    "python-fastapi": 12,
    "quarto-shiny": 13,
    "quarto-static": 14,
    "python-shiny": 15,
    "jupyter-voila": 16,
    "python-gradio": 17,
    "python-panel": 18,
    "nodejs": 20,
    "nodejs-api": 20,  # the old name rsconnect still reads
}

# quarto-static is absent: it needs Python only when its manifest has a `python` section (Manifest.needs_python).
PYTHON_APP_MODES: frozenset[str] = frozenset(
    {
        "python-api",
        "python-fastapi",
        "python-dash",
        "python-streamlit",
        "python-bokeh",
        "python-shiny",
        "python-gradio",
        "python-panel",
        "jupyter-static",
        "jupyter-voila",
        "quarto-shiny",
    }
)

API_APP_MODES: dict[str, str] = {"python-fastapi": "asgi", "python-api": "wsgi"}
# Served as files with no process: as uploaded (static) or rendered at deploy time (notebooks, Quarto).
FILE_APP_MODES: frozenset[str] = frozenset({"static", "jupyter-static", "quarto-static"})

PACKAGE_MANAGERS = ("pip", "uv")
DEFAULT_PACKAGE_FILE = "requirements.txt"

_NEXT_STEP = "rsconnect writes it"


@dataclass(frozen=True)
class Manifest:
    appmode: str
    entrypoint: str | None
    primary_html: str | None
    python_version: str | None  # python.version: the interpreter the bundle was made with
    package_file: str | None  # None only when the content needs no Python
    package_manager: str | None  # "pip" or "uv"
    allow_uv: bool | None
    requires_python: str | None  # environment.python.requires, a PEP 440 specifier
    environment_management: bool | None  # environment.environment_management.python; False: run on the host's Python
    raw: dict[str, Any]
    hide_all_input: bool = False  # jupyter.hide_all_input: render a notebook without its code
    hide_tagged_input: bool = False  # jupyter.hide_tagged_input: ... without the code of cells tagged `hide_input`

    @property
    def needs_python(self) -> bool:
        """Whether deploying this content means building a Python environment from its package file."""
        return self.appmode in PYTHON_APP_MODES or (
            self.appmode == "quarto-static" and isinstance(self.raw.get("python"), dict)
        )


def parse_manifest(data: bytes) -> Manifest:
    """Read and check the bytes of a `manifest.json`; every BundleError names the field at fault."""
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as exc:
        raise BundleError(
            f"manifest.json is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "write it with `rsconnect write-manifest`, or fix it by hand."
        ) from exc
    except UnicodeDecodeError as exc:
        raise BundleError(
            f"manifest.json is not UTF-8 text (byte {data[exc.start : exc.start + 1]!r} at position {exc.start}); "
            "save it as UTF-8, or write it with `rsconnect write-manifest`."
        ) from exc
    if not isinstance(raw, dict):
        raise BundleError(
            f"manifest.json holds {_json_kind(raw)}, not an object; write it with `rsconnect write-manifest`."
        )

    metadata = _section(raw, "metadata", required=True)
    assert metadata is not None
    if "appmode" not in metadata:
        raise BundleError(f"manifest.json: `metadata.appmode` is missing; {_mode_choices()} ({_NEXT_STEP}).")
    appmode = metadata["appmode"]
    if not isinstance(appmode, str):
        raise BundleError(
            f"manifest.json: `metadata.appmode` is {_show(appmode)}, not a string; {_mode_choices()} ({_NEXT_STEP})."
        )
    if appmode not in APP_MODES:
        close = difflib.get_close_matches(appmode, APP_MODES, n=1)
        guess = f"did you mean {close[0]}? Otherwise " if close else ""
        raise BundleError(
            f"manifest.json: `metadata.appmode` is {_show(appmode)}, which Packyard does not know; "
            f"{guess}{_mode_choices()} ({_NEXT_STEP})."
        )
    entrypoint = _string(metadata, "metadata.entrypoint")
    if appmode in API_APP_MODES and not entrypoint:
        raise BundleError(
            "manifest.json: `metadata.entrypoint` is missing; an API bundle names its module, e.g. `app` or `app:app`."
        )

    python = _section(raw, "python")
    package_manager = _section(python, "python.package_manager") if python is not None else None
    manager = _string(package_manager, "python.package_manager.name") if package_manager is not None else None
    if manager is not None and manager not in PACKAGE_MANAGERS:
        raise BundleError(
            f"manifest.json: `python.package_manager.name` is {_show(manager)}; Packyard installs with pip or uv, "
            "so deploy with `--package-installer PIP` or `--package-installer UV`."
        )
    package_file = _package_file(package_manager) if python is not None or appmode in PYTHON_APP_MODES else None

    environment = _section(raw, "environment")
    env_python = _section(environment, "environment.python") if environment is not None else None
    requires_python = _string(env_python, "environment.python.requires") if env_python is not None else None
    if requires_python is not None:
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier as exc:
            raise BundleError(
                f"manifest.json: `environment.python.requires` is {_show(requires_python)}, which is not a "
                "version specifier; write one such as `~=3.11.0` or `>=3.10` (rsconnect takes it from "
                "`.python-version` or pyproject.toml `requires-python`)."
            ) from exc
    management = _section(environment, "environment.environment_management") if environment is not None else None
    jupyter = _section(raw, "jupyter")

    return Manifest(
        appmode=appmode,
        entrypoint=entrypoint,
        primary_html=_string(metadata, "metadata.primary_html"),
        python_version=_string(python, "python.version") if python is not None else None,
        package_file=package_file,
        package_manager=manager,
        allow_uv=_bool(package_manager, "python.package_manager.allow_uv") if package_manager is not None else None,
        requires_python=requires_python,
        environment_management=(
            _bool(management, "environment.environment_management.python") if management is not None else None
        ),
        raw=raw,
        hide_all_input=bool(jupyter is not None and _bool(jupyter, "jupyter.hide_all_input")),
        hide_tagged_input=bool(jupyter is not None and _bool(jupyter, "jupyter.hide_tagged_input")),
    )


def _package_file(package_manager: dict[str, Any] | None) -> str:
    """The package file's path inside the bundle; refuse one that would reach outside it."""
    name = _string(package_manager, "python.package_manager.package_file") if package_manager is not None else None
    if name is None:
        return DEFAULT_PACKAGE_FILE
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or name.startswith("/") or ".." in parts or "\\" in name or "\x00" in name:
        raise BundleError(
            f"manifest.json: `python.package_manager.package_file` is {_show(name)}, which is not a file inside "
            f"the bundle; name one relative to manifest.json, e.g. `{DEFAULT_PACKAGE_FILE}`."
        )
    return posixpath.join(*parts)


def _section(parent: dict[str, Any], key: str, *, required: bool = False) -> dict[str, Any] | None:
    """The object at `key` (a dotted path for messages; its last part is looked up), or None if absent."""
    value = parent.get(key.rsplit(".", 1)[-1])
    if value is None and not required:
        return None
    if value is None:
        raise BundleError(f"manifest.json: `{key}` is missing; write the manifest with `rsconnect write-manifest`.")
    if not isinstance(value, dict):
        raise BundleError(
            f"manifest.json: `{key}` is {_show(value)}, not an object; write the manifest with "
            "`rsconnect write-manifest`."
        )
    return value


def _string(parent: dict[str, Any], key: str) -> str | None:
    value = parent.get(key.rsplit(".", 1)[-1])
    if value is None or isinstance(value, str):
        return value
    raise BundleError(f"manifest.json: `{key}` is {_show(value)}, not a string; write it in double quotes.")


def _bool(parent: dict[str, Any], key: str) -> bool | None:
    value = parent.get(key.rsplit(".", 1)[-1])
    if value is None or isinstance(value, bool):
        return value
    raise BundleError(f"manifest.json: `{key}` is {_show(value)}, not true or false; write `true` or `false`.")


def _mode_choices() -> str:
    # API modes first: they are what Packyard runs today, and the likeliest intent of a typo.
    ordered = [*API_APP_MODES, *(mode for mode in APP_MODES if mode not in API_APP_MODES and mode != "unknown")]
    return "use one of " + ", ".join(ordered)


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return f"the {type(value).__name__} {_show(value)}"
