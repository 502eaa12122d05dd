"""Package policy as the index applies it: which block rules and curated allowlist entries match a version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from packyard.db import table_of
from packyard.repository.errors import RepositoryError
from packyard.repository.models import BlockRule, CuratedEntry

_RULE_TABLE = table_of(BlockRule)
# Core rows, not ORM entities: this runs in every upload's page render, and almost always finds nothing.
_RULES = (
    select(_RULE_TABLE.c.id, _RULE_TABLE.c.repository_id, _RULE_TABLE.c.specifier, _RULE_TABLE.c.reason)
    .where(
        _RULE_TABLE.c.project == bindparam("project"),
        or_(_RULE_TABLE.c.repository_id.is_(None), _RULE_TABLE.c.repository_id == bindparam("repo_id")),
    )
    .order_by(_RULE_TABLE.c.id)
)
_CURATED = select(CuratedEntry.specifier).where(
    CuratedEntry.source_id == bindparam("source_id"), CuratedEntry.project == bindparam("project")
)


def parse_specifier(text: str) -> SpecifierSet:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier as exc:
        raise RepositoryError(
            f"Version specifier {text!r} is not valid; write it like `<4.0`, `>=1.2,<2` or `==3.2.1`."
        ) from exc


def matches(specifier: str, version: str) -> bool:
    """Whether `version` falls under `specifier` (empty: every version; `a | b`: either); pre-releases included."""
    if not specifier:
        return True
    try:
        parsed = Version(version)
        return any(SpecifierSet(alt).contains(parsed, prereleases=True) for alt in specifier.split("|"))
    except (InvalidSpecifier, InvalidVersion):
        return False


class Rule(Protocol):
    id: int
    repository_id: int | None
    specifier: str
    reason: str


@dataclass(frozen=True)
class Rules:
    """The block rules that apply to one project in one repository."""

    rules: tuple[Rule, ...]

    def blocked(self, version: str) -> Rule | None:
        return next((r for r in self.rules if matches(r.specifier, version)), None)


def rules_for(session: Session, repo_id: int, project: str) -> Rules:
    rows = session.execute(_RULES, {"repo_id": repo_id, "project": project}).all()
    return Rules(tuple(rows))


def curated_specifier(session: Session, source_id: int, project: str) -> str | None:
    """The versions of `project` a curated source serves (`""` for all), or None when it is not listed."""
    return session.scalar(_CURATED, {"source_id": source_id, "project": project})


def block_message(rule: Rule, project: str, version: str, repo: str) -> str:
    scope = f"repository `{repo}`" if rule.repository_id is not None else "every repository on this server"
    return (
        f"`{project}` {version} is blocked in {scope}: {rule.reason} (rule {rule.id}); "
        f"pick another version, or ask an administrator (`packyard policy test {project}=={version} --repo {repo}`)."
    )
