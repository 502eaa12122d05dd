"""The admin overview's recent changes in words: each change-log event as a label and a sentence that names what
it touched (users, groups, keys, tokens, content and who it is shared with, sources, repositories, rules) instead
of ids and event kinds.

Events keep ids (a token's jti, a rule's id, a content guid); names are looked up when the page is shown, and what
a later change deleted (a revoked key, a removed rule) falls back to what the event itself recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.models import Token
from packyard.changelog.events import Event
from packyard.publishing.deploy import changes as content_changes
from packyard.publishing.models import Content
from packyard.repository.models import BlockRule, CuratedEntry, Repository, Source

_SOURCE_TYPES = {
    "local-python": "uploads",
    "pypi": "a mirror",
    "curated-pypi": "a curated mirror",
    "local-r": "R uploads",
}
_ACCESS_WORDS = {"acl": "specific users", "logged_in": "every signed-in user", "all": "anyone, without signing in"}
_ROLE_WORDS = {"viewer": "viewer", "owner": "collaborator"}


@dataclass(frozen=True)
class Change:
    at: datetime
    label: str  # what happened, e.g. "API key revoked"
    detail: str  # what it touched, by name
    kind: str  # the change log's own word for it, for the page's title attribute

    @property
    def detail_html(self) -> Markup:
        """The detail with each `quoted` name in <code>, the rest escaped."""
        parts = self.detail.split("`")
        return Markup("").join(
            Markup("<code>{}</code>").format(part) if i % 2 else escape(part) for i, part in enumerate(parts)
        )


class _Names:
    """Names by id, each looked up once per page."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cache: dict[tuple[str, object], str | None] = {}

    def _get(self, what: str, key: object, load: Callable[[], str | None]) -> str | None:
        if (what, key) not in self._cache:
            self._cache[what, key] = load()
        return self._cache[what, key]

    def source(self, source_id: int | None) -> str:
        name = self._get(
            "source", source_id, lambda: self.session.scalar(select(Source.name).where(Source.id == source_id))
        )
        return f"`{name}`" if name else "a removed source"

    def repo(self, repo_id: int | None) -> str:
        if repo_id is None:
            return "every repository"
        name = self._get(
            "repo", repo_id, lambda: self.session.scalar(select(Repository.name).where(Repository.id == repo_id))
        )
        return f"`{name}`" if name else "a removed repository"

    def token(self, jti: str) -> str:
        description = self._get(
            "token", jti, lambda: self.session.scalar(select(Token.description).where(Token.jti == jti))
        )
        return f"“{description}”" if description else f"a token that no longer exists ({jti[:8]}…)"

    def content(self, guid: str) -> str:
        def load() -> str | None:
            row = self.session.execute(select(Content.name, Content.title).where(Content.guid == guid)).first()
            if row is None:
                return None
            return f"“{row.title}” (`{row.name}`)" if row.title and row.title != row.name else f"`{row.name}`"

        return self._get("content", guid, load) or f"content that no longer exists ({guid[:8]}…)"

    def curated(self, source_id: int | None, project: str) -> bool:
        return self.session.get(CuratedEntry, (source_id, project)) is not None

    def rule(self, rule_id: int) -> BlockRule | None:
        return self.session.get(BlockRule, rule_id)


def describe(session: Session, events: list[Event]) -> list[Change]:
    names = _Names(session)
    return [Change(e.at, *_words(names, e), e.kind) for e in events]


def _words(names: _Names, e: Event) -> tuple[str, str]:
    kind, detail = e.kind, e.detail or ""
    words = detail.split()
    if kind == "user-create":
        user, role = (words + ["", ""])[:2]
        return "User created", f"`{user}`, as {role or 'a user'}"
    if kind == "user-role":
        user, role = (words + ["", ""])[:2]
        return "Role changed", f"`{user}` is now {role}"
    if kind in ("user-lock", "user-unlock", "user-password"):
        label = {"user-lock": "User locked", "user-unlock": "User unlocked", "user-password": "Password set"}[kind]
        return label, f"`{detail}`"
    if kind in ("key-create", "key-revoke"):
        key_id, user, name = (detail.split(" ", 2) + ["", "", ""])[:3]
        label = "API key created" if kind == "key-create" else "API key revoked"
        which = f"“{name}”" if name else f"number {key_id}"
        return label, f"key {which} of `{user}`" if user else f"key {which}"
    if kind in ("token-create", "token-revoke"):
        return ("Token created" if kind == "token-create" else "Token revoked"), names.token(detail)
    if kind == "env-remove":
        return "Environment removed", f"environment `{detail[:12]}`"
    if kind in ("group-create", "group-delete"):
        return ("Group created" if kind == "group-create" else "Group deleted"), f"`{detail}`"
    if kind in ("group-member-add", "group-member-remove"):
        group, _, user = detail.rpartition(" ")  # a group's name may hold spaces, a user's never does
        if kind == "group-member-add":
            return "Group member added", f"`{user}` to group `{group}`"
        return "Group member removed", f"`{user}` from group `{group}`"
    if kind.startswith("permission-"):
        return _permission(names, kind, detail)
    if kind == "content-access":
        guid, _, access = detail.partition(" ")
        return "Access changed", f"{names.content(guid)} opens to {_ACCESS_WORDS.get(access, access)}"
    if (change := content_changes.parse(kind, detail)) is not None:
        return _content_change(names, change)
    if kind.startswith("content-"):
        label = {"content-runtime": "Runtime settings changed"}.get(kind, kind.removeprefix("content-").capitalize())
        return label, names.content(detail)
    if kind == "source-create":
        return "Source created", f"{names.source(e.source_id)}, for {_SOURCE_TYPES.get(detail, detail)}"
    if kind == "repo-create":
        return "Repository created", names.repo(e.repository_id)
    if kind == "repo-edit" and detail.startswith("reader_groups="):
        groups = detail.removeprefix("reader_groups=")
        now = f"is now read through single sign-on by {groups.replace(',', ', ')}" if groups else "has no reader groups"
        return "Repository changed", f"{names.repo(e.repository_id)} {now}"
    if kind == "repo-edit":
        now = "now needs a token to read" if detail == "authenticated=True" else "is now readable without a token"
        return "Repository changed", f"{names.repo(e.repository_id)} {now}"
    if kind == "subscribe":
        return (
            "Source subscribed",
            f"{names.repo(e.repository_id)} serves {names.source(e.source_id)} (priority {detail})",
        )
    if kind == "policy":
        action, _, rule_id = detail.partition(" ")
        rule = names.rule(int(rule_id)) if rule_id.isdigit() else None
        what = f"`{e.project}{rule.specifier}`" if rule is not None else f"`{e.project}`"
        why = f": {rule.reason}" if rule is not None and rule.reason else ""
        label = "Block rule added" if action == "block" else "Block rule removed"
        return label, f"rule {rule_id}, {what} in {names.repo(e.repository_id)}{why}"
    if kind == "curate":
        source = names.source(e.source_id)
        if detail:
            return "Allowlist changed", f"{source} allows `{e.project}{detail}`"
        # The event does not tell "every version" from "removed" apart; the entry as it is now does.
        if names.curated(e.source_id, e.project):
            return "Allowlist changed", f"{source} allows every version of `{e.project}`"
        return "Allowlist changed", f"{source} no longer allows `{e.project}`"
    if kind == "shadow":
        return (
            "Upload hides upstream",
            f"`{e.project}` in {names.source(e.source_id)} hides its upstream versions from mirror {detail}",
        )
    return kind, " ".join(part for part in (e.project, detail) if part)


def _permission(names: _Names, kind: str, detail: str) -> tuple[str, str]:
    """`permission-*` events: "<content guid> user:<name>|group:<name> <role>"."""
    guid, _, rest = detail.partition(" ")
    principal, _, role = rest.rpartition(" ")
    what, _, name = principal.partition(":")
    who = f"{what} `{name}`" if name else "someone"
    role = _ROLE_WORDS.get(role, role)
    content = names.content(guid)
    if kind == "permission-add":
        return "Content shared", f"{content} with {who}, as {role}"
    if kind == "permission-change":
        return "Sharing changed", f"{who} is now {role} of {content}"
    return "Content unshared", f"{content} no longer shared with {who} (was {role})"


_CONTENT_CHANGES = {
    content_changes.ACTIVATED: "Bundle activated",
    content_changes.VARIABLES: "Variables changed",
    content_changes.DELETED: "Content deleted",
    content_changes.BUNDLE_DELETED: "Bundle deleted",
}


def _content_change(names: _Names, change: content_changes.Change) -> tuple[str, str]:
    bundle = f"bundle {change.bundle_id} of " if change.bundle_id is not None else ""
    return _CONTENT_CHANGES[change.kind], bundle + names.content(change.guid)
