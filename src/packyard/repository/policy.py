"""Package policy: block rules (per repository or server-wide) and curated allowlists."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from packyard.repository.errors import RepositoryError
from packyard.repository.models import BlockRule, CuratedEntry

_RULES = (
    select(BlockRule)
    .where(
        BlockRule.project == bindparam("project"),
        or_(BlockRule.repository_id.is_(None), BlockRule.repository_id == bindparam("repo_id")),
    )
    .order_by(BlockRule.id)
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
    """Whether `version` falls under `specifier` (empty: every version); pre-releases included."""
    if not specifier:
        return True
    try:
        return SpecifierSet(specifier).contains(Version(version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return False


@dataclass(frozen=True)
class Rules:
    """The block rules that apply to one project in one repository."""

    rules: tuple[BlockRule, ...]

    def blocked(self, version: str) -> BlockRule | None:
        return next((r for r in self.rules if matches(r.specifier, version)), None)


def rules_for(session: Session, repo_id: int, project: str) -> Rules:
    return Rules(tuple(session.scalars(_RULES, {"repo_id": repo_id, "project": project})))


def curated_specifier(session: Session, source_id: int, project: str) -> str | None:
    """The versions of `project` a curated source serves (`""` for all), or None when it is not listed."""
    return session.scalar(_CURATED, {"source_id": source_id, "project": project})


def block_message(rule: BlockRule, project: str, version: str, repo: str) -> str:
    scope = f"repository `{repo}`" if rule.repository_id is not None else "this server"
    return (
        f"`{project}` {version} is blocked in {scope}: {rule.reason} (rule {rule.id}); "
        "pick another version, or ask an administrator (`packyard policy test`)."
    )
