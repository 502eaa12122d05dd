"""The change-log events that keep every node serving what the database says a content runs: a bundle activated
(a deploy, a redeploy, a rollback), its variables changed, one of its bundles or the content itself deleted.
`Deployer.follow` acts on those another node wrote."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from packyard.changelog.events import record

ACTIVATED = "content-activate"
VARIABLES = "content-variables"
DELETED = "content-delete"
BUNDLE_DELETED = "content-bundle-delete"
KINDS = frozenset({ACTIVATED, VARIABLES, DELETED, BUNDLE_DELETED})


@dataclass(frozen=True)
class Change:
    kind: str
    guid: str
    bundle_id: int | None
    node: str  # who wrote it: that node has acted already ("" for the CLI)


def announce(session: Session, kind: str, guid: str, node: str, bundle_id: int | None = None) -> None:
    """Record a change to a content in the writer's transaction; `node` is the writer's (`Deployer.node`)."""
    record(session, kind, detail=f"{guid} {bundle_id if bundle_id is not None else '-'} {node}".rstrip())


def parse(kind: str, detail: str) -> Change | None:
    """The change an event of one of KINDS says; None for other events."""
    if kind not in KINDS:
        return None
    guid, bundle, node = (detail.split(" ", 2) + ["", ""])[:3]
    return Change(kind, guid, int(bundle) if bundle.isdigit() else None, node)
