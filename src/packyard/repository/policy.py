"""Package policy: block rules (per repository or server-wide) and curated allowlists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from packyard.repository.errors import RepositoryError
from packyard.repository.models import BlockRule, CuratedEntry

_RULE_TABLE = BlockRule.__table__
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
    return Rules(tuple(rows))  # type: ignore[arg-type]


def curated_specifier(session: Session, source_id: int, project: str) -> str | None:
    """The versions of `project` a curated source serves (`""` for all), or None when it is not listed."""
    return session.scalar(_CURATED, {"source_id": source_id, "project": project})


def block_message(rule: Rule, project: str, version: str, repo: str) -> str:
    scope = f"repository `{repo}`" if rule.repository_id is not None else "every repository on this server"
    return (
        f"`{project}` {version} is blocked in {scope}: {rule.reason} (rule {rule.id}); "
        f"pick another version, or ask an administrator (`packyard policy test {project}=={version} --repo {repo}`)."
    )


# -- writes (the CLI on the server host) ------------------------------------------------------------------------


def create_rule(session: Session, project: str, specifier: str, reason: str, repo_name: str | None) -> BlockRule:
    from packyard.repository import indexer, services
    from packyard.repository.names import is_valid_project_name, normalize

    project = project.strip()
    if not is_valid_project_name(project):
        raise RepositoryError(
            f"Project name {project!r} is not valid; give a name as pip spells it, e.g. `requests` or `Django`."
        )
    if not reason.strip():
        raise RepositoryError("Give a `--reason`: clients see it in the 403, and operators in `policy list`.")
    specifier = specifier.strip()
    parse_specifier(specifier)
    repo_id = services.get_repository(session, repo_name).id if repo_name else None
    rule = BlockRule(repository_id=repo_id, project=normalize(project), specifier=specifier, reason=reason.strip())
    session.add(rule)
    session.flush()
    serial = services.record(session, "policy", repository_id=repo_id, project=rule.project, detail=f"block {rule.id}")
    indexer.rebuild_everywhere(session, rule.project, serial, repo_id)
    return rule


def remove_rule(session: Session, rule_id: int) -> BlockRule:
    from packyard.repository import indexer, services
    from packyard.repository.errors import NotFound

    rule = session.get(BlockRule, rule_id)
    if rule is None:
        raise NotFound(f"No block rule {rule_id}; `packyard policy list` shows the rules and their ids.")
    session.delete(rule)
    session.flush()
    serial = services.record(
        session, "policy", repository_id=rule.repository_id, project=rule.project, detail=f"unblock {rule.id}"
    )
    indexer.rebuild_everywhere(session, rule.project, serial, rule.repository_id)
    return rule


def list_rules(session: Session) -> list[tuple[BlockRule, str]]:
    """Every rule with the name of its repository (`*` for server-wide)."""
    from packyard.repository.models import Repository

    names = dict(session.execute(select(Repository.id, Repository.name)).tuples().all())
    rules = session.scalars(select(BlockRule).order_by(BlockRule.project, BlockRule.id))
    return [(r, names.get(r.repository_id, "*") if r.repository_id is not None else "*") for r in rules]


def explain(session: Session, repo_name: str, project: str, version: str) -> tuple[bool, list[str]]:
    """Whether `repo` serves `project` `version`, and the reasons, in the order the server applies them."""
    from packyard.repository import services
    from packyard.repository.models import DistFile, Project, Source, Subscription
    from packyard.repository.names import normalize

    repo = services.get_repository(session, repo_name)
    name = normalize(project)
    lines: list[str] = []
    subs = session.scalars(
        select(Subscription).where(Subscription.repository_id == repo.id).order_by(Subscription.priority)
    ).all()
    chosen: Source | None = None
    for sub in subs:
        source = sub.source
        has = session.scalar(select(Project.id).where(Project.source_id == source.id, Project.name == name))
        if source.type == "curated-pypi":
            allowed = curated_specifier(session, source.id, name)
            if allowed is None:
                lines.append(f"source `{source.name}` (curated-pypi): `{name}` is not on its allowlist")
                continue
            if not matches(allowed, version):
                lines.append(f"source `{source.name}` (curated-pypi): allowlist has `{name}` {allowed}, not {version}")
                return False, lines
        if has is None and source.type == "local-python":
            lines.append(f"source `{source.name}` ({source.type}): has no `{name}`")
            continue
        if has is None:
            lines.append(
                f"source `{source.name}` ({source.type}): `{name}` not cached yet; served if the upstream has it"
            )
        else:
            lines.append(f"source `{source.name}` ({source.type}): has `{name}`; lower-priority sources are hidden")
        chosen = source
        break
    if chosen is None:
        lines.append(f"`{name}` is not served by repository `{repo_name}`")
        return False, lines
    rule = rules_for(session, repo.id, name).blocked(version)
    if rule is not None:
        scope = f"repository `{repo_name}`" if rule.repository_id is not None else "every repository"
        spec = rule.specifier or "every version"
        lines.append(f"blocked by rule {rule.id} ({scope}, `{name}` {spec}): {rule.reason}")
        return False, lines
    files = session.scalars(
        select(DistFile)
        .join(Project)
        .where(Project.source_id == chosen.id, Project.name == name, DistFile.version == version)
    ).all()
    live = [f for f in files if f.deleted_at is None]
    if files and not live:
        lines.append(f"{version} was deleted from `{chosen.name}`")
        return False, lines
    if not files and chosen.type == "local-python":
        lines.append(f"`{name}` has no version {version} in `{chosen.name}`")
        return False, lines
    if any(f.yanked for f in live):
        lines.append(
            f"{version} is yanked ({live[0].yanked_reason or 'no reason given'}); installed only when pinned with =="
        )
    lines.append("no block rule matches")
    return True, lines
