"""Every error Packyard reports lives in its domain's `errors.py`, with a docstring saying when it is raised, and
each `errors.py` draws its classes in its module docstring (as httpx's `_exceptions.py` does)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import packyard
from packyard.errors import PackyardError

PACKAGE = Path(packyard.__file__).parent
# Raised and caught where they are defined, never reaching a user; each errors.py docstring says why.
STAY_WHERE_RAISED = {
    "packyard.publishing.runtime.harness": {"EntrypointError"},  # runs in the app's interpreter, stdlib only
    "packyard.publishing.proxy.http": {"_NoResponse", "_ResponseStarted"},
}


def all_modules() -> list[str]:
    names = ["packyard"]
    for info in pkgutil.walk_packages([str(PACKAGE)], "packyard."):
        if not info.name.startswith(("packyard.migrations.versions", "packyard.migrations.env", "packyard.__main__")):
            names.append(info.name)
    return names


def subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | subclasses(sub)
    return found


def test_every_packyard_error_is_in_an_errors_module() -> None:
    for name in all_modules():
        importlib.import_module(name)
    errors = {cls for cls in subclasses(PackyardError) if cls.__module__.startswith("packyard.")}
    assert len(errors) > 30
    misplaced = sorted(
        f"{cls.__module__}.{cls.__qualname__}" for cls in errors if cls.__module__.split(".")[-1] != "errors"
    )
    assert misplaced == [], "move these into their domain's errors.py"


def test_no_exception_class_is_defined_outside_errors_modules() -> None:
    """Read with `ast`: a class whose base is named like an exception (`...Error`, `...Exception`, or one of the
    errors.py classes) belongs in an errors.py."""
    names = {"Exception", "LookupError", "ValueError", "RuntimeError", "OSError", "KeyError"}
    for path in PACKAGE.rglob("errors.py"):
        names |= {node.name for node in ast.parse(path.read_text()).body if isinstance(node, ast.ClassDef)}
    found = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if bases & names or any(b.endswith(("Error", "Exception")) for b in bases):
                    if node.name not in STAY_WHERE_RAISED.get(module, set()):
                        found.append(f"{module}.{node.name}")
    assert found == [], "move these into their domain's errors.py"


def test_errors_modules_draw_their_classes_and_say_when_each_is_raised() -> None:
    for path in sorted(PACKAGE.rglob("errors.py")):
        module = importlib.import_module(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        drawing = module.__doc__ or ""
        classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
        assert classes, path
        for cls in classes:
            assert re.search(rf"\b{cls.__name__}\b", drawing), f"{path}: the docstring's tree lacks {cls.__name__}"
            assert cls.__doc__ and cls.__doc__.strip(), f"{path}: {cls.__name__} has no docstring"
