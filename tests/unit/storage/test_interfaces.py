"""The blob store's contract: no local paths in it, and none taken from it outside `packyard/storage/`."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from packyard.storage import BlobStore, LocalBlobStore, S3BlobStore, StagedBlob

PACKAGE = Path(__file__).resolve().parents[3] / "src" / "packyard"
WRITES = {"stage", "commit", "discard", "put_bytes", "delete"}
METHODS = WRITES | {"exists", "size", "read", "open", "stream", "local_file", "redirect_url"}


def public_members(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}


def test_the_protocol_is_these_methods_and_no_path() -> None:
    assert public_members(BlobStore) == METHODS
    assert BlobStore.__annotations__ == {"local": "bool"}
    assert "path" not in public_members(StagedBlob)


@pytest.mark.parametrize(
    ("store", "extra"),
    [
        # `verify` is for maintenance; `root` and `staging` are where it keeps files, for its own tests and the CLI.
        (LocalBlobStore, {"verify", "local"}),
        # `check` is the startup check of the bucket and credentials.
        (S3BlobStore, {"check", "local"}),
    ],
)
def test_each_store_has_every_method_with_the_protocols_parameters(store: type, extra: set[str]) -> None:
    # mypy checks the rest: `AppContext.store` is a `BlobStore` that `context.open_store` makes.
    for name in METHODS:
        ours, theirs = inspect.signature(getattr(store, name)), inspect.signature(getattr(BlobStore, name))
        assert ours.parameters == theirs.parameters, name
    assert public_members(store) - METHODS == extra


def calls_outside_storage(package: Path = PACKAGE) -> list[str]:
    """`<something>store.path(...)`, `staged.path` and the staged blob's private file or handle, anywhere in
    src/packyard except the storage package itself."""
    found = []
    for file in sorted(package.rglob("*.py")):
        if file.is_relative_to(package / "storage"):
            continue
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if not isinstance(node, ast.Attribute):
                continue
            owner = ast.unparse(node.value)
            leaf = owner.rsplit(".", 1)[-1]
            blob_store = leaf.endswith("store") and node.attr == "path"
            staged = "staged" in leaf and node.attr in {"path", "handle", "_file", "_handle"}
            if blob_store or staged:
                found.append(f"{file.relative_to(package)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_code_outside_storage_asks_a_store_for_a_path() -> None:
    assert calls_outside_storage() == [], "read blobs by digest; use `store.local_file(digest)` for a local file"
