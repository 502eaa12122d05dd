"""`/admin/...`: users, API keys, tokens, the environment cache, sources and block rules, for administrators.

Every change is a POST with the CSRF token that calls the same domain function as the CLI command, so it leaves the
same change-log events; the page answers with a message, and with the form as sent when the input was refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, or_, select

from packyard import formatting
from packyard.auth import tokens
from packyard.auth.models import Token
from packyard.changelog.events import Event
from packyard.db import utcnow
from packyard.errors import PackyardError
from packyard.publishing import signin, users
from packyard.publishing.models import ROLES, ApiKey, Group, PythonEnvironment, User
from packyard.repository import services
from packyard.repository.models import BlockRule, Repository, Source
from packyard.repository.policy.admin import create_rule, list_rules, remove_rule
from packyard.web import changes
from packyard.web.error_pages import PageRoute
from packyard.web.errors import PageError
from packyard.web.render import render
from packyard.web.session import WebUser, admin_only, check_csrf, context

Notice = tuple[str, str]  # ("success" | "error" | "info", sentence)


def _in_admin(request: Request) -> None:
    request.state.section = "admin"  # error pages of this area keep its nav


router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(_in_admin)], route_class=PageRoute)
Admin = Annotated[WebUser, Depends(admin_only)]
# Checked in this order: a non-admin's POST is refused as such before its form is looked at.
CHANGE = [Depends(admin_only), Depends(check_csrf)]


def _page(
    request: Request, template: str, *, notice: Notice | None = None, status: int = 200, **values: Any
) -> HTMLResponse:
    return render(
        request,
        f"admin/{template}",
        section="admin",
        status=status,
        notice=notice,
        **values,
    )


def _attempt(request: Request, write: Callable[[], str]) -> tuple[Notice, int]:
    """Run a write; its success sentence, or the domain error's sentence and status (nothing was stored)."""
    try:
        message = write()
    except PackyardError as exc:
        return ("error", exc.message), exc.status_code
    context(request).sync()  # this process's caches (tokens, keys, pages) follow at once
    return ("success", message), 200


# The change log's administrative events, as the overview lists them (uploads and page renders are left out).
ADMIN_EVENTS = ("policy", "source-create", "repo-create", "repo-edit", "subscribe", "curate", "shadow")
ADMIN_EVENT_PREFIXES = ("user-", "key-", "token-", "env-", "content-", "group-", "permission-")
RECENT = 15

# -- overview -----------------------------------------------------------------------------------------------------


@router.get("/")
def overview(request: Request, user: Admin) -> HTMLResponse:
    app = context(request)
    with app.db.session() as session:
        now = utcnow()
        count = {
            "users": session.scalar(select(func.count()).select_from(User)) or 0,
            "groups": session.scalar(select(func.count()).select_from(Group)) or 0,
            "keys": session.scalar(select(func.count()).select_from(ApiKey)) or 0,
            "tokens": sum(tokens.token_state(t, now) == "active" for t in tokens.list_tokens(session)),
            "environments": session.scalar(select(func.count()).select_from(PythonEnvironment)) or 0,
            "env_size": session.scalar(select(func.coalesce(func.sum(PythonEnvironment.size), 0))) or 0,
            "sources": session.scalar(select(func.count()).select_from(Source)) or 0,
            "rules": session.scalar(select(func.count()).select_from(BlockRule)) or 0,
        }
        admin_kinds = or_(Event.kind.in_(ADMIN_EVENTS), *(Event.kind.startswith(p) for p in ADMIN_EVENT_PREFIXES))
        events = list(session.scalars(select(Event).where(admin_kinds).order_by(Event.id.desc()).limit(RECENT)))
        recent = changes.describe(session, events)
    sandbox = app.sandbox
    sandboxed = sandbox.enabled and not sandbox.problem
    return _page(request, "index.html", count=count, recent=recent, sandbox=sandbox.status(), sandboxed=sandboxed)


# -- users --------------------------------------------------------------------------------------------------------


def _users(
    request: Request, notice: Notice | None = None, status: int = 200, form: dict[str, str] | None = None
) -> HTMLResponse:
    with context(request).db.session() as session:
        rows = users.list_users(session)
    form = form or {"username": "", "role": "publisher", "email": ""}
    return _page(request, "users.html", notice=notice, status=status, users=rows, roles=ROLES, form=form)


@router.get("/users/")
def users_page(request: Request, user: Admin) -> HTMLResponse:
    return _users(request)


@router.post("/users/", dependencies=CHANGE)
def user_create(
    request: Request,
    username: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "publisher",
    password: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
) -> HTMLResponse:
    name = username.strip()

    def write() -> str:
        with context(request).db.session() as session:
            users.create_user(session, name, role, email.strip())
            signin.set_password(session, name, password)
        return f"Created {role} `{name}`; they can sign in now with the password you gave them."

    notice, status = _attempt(request, write)
    form = {"username": username, "role": role, "email": email} if status != 200 else None
    return _users(request, notice, status, form)


@router.post("/users/{username}/role", dependencies=CHANGE)
def user_role(request: Request, user: Admin, username: str, role: Annotated[str, Form()] = "") -> HTMLResponse:
    def write() -> str:
        if username == user.username and role != "admin":
            raise PageError(
                f"You cannot take the admin role from yourself (`{username}`); another administrator can.", 409
            )
        with context(request).db.session() as session:
            users.set_role(session, username, role)
        return f"`{username}` is now {role}; their API keys and pages follow at once."

    return _users(request, *_attempt(request, write))


@router.post("/users/{username}/lock", dependencies=CHANGE)
def user_lock(request: Request, user: Admin, username: str) -> HTMLResponse:
    def write() -> str:
        if username == user.username:
            raise PageError(f"You cannot lock your own account (`{username}`); another administrator can.", 409)
        with context(request).db.session() as session:
            signin.set_locked(session, username, True)
        return f"Locked `{username}`: their web sessions ended and their API keys stop working at once."

    return _users(request, *_attempt(request, write))


@router.post("/users/{username}/unlock", dependencies=CHANGE)
def user_unlock(request: Request, username: str) -> HTMLResponse:
    def write() -> str:
        with context(request).db.session() as session:
            signin.set_locked(session, username, False)
        return f"Unlocked `{username}`."

    return _users(request, *_attempt(request, write))


# -- API keys -----------------------------------------------------------------------------------------------------


def _keys(
    request: Request,
    owner: str = "",
    notice: Notice | None = None,
    status: int = 200,
    created: str = "",
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    with context(request).db.session() as session:
        names = [u.username for u in users.list_users(session)]
        rows = users.list_keys(session, owner or None)
    return _page(
        request,
        "keys.html",
        notice=notice,
        status=status,
        keys=rows,
        usernames=names,
        owner=owner,
        created=created,
        address=context(request).settings.server.address,
        form=form or {"user": owner, "name": ""},
    )


@router.get("/keys/")
def keys_page(request: Request, user: Admin, owner: Annotated[str, Query(alias="user")] = "") -> HTMLResponse:
    return _keys(request, owner)


@router.post("/keys/", dependencies=CHANGE)
def key_create(
    request: Request, owner: Annotated[str, Form(alias="user")] = "", name: Annotated[str, Form()] = ""
) -> HTMLResponse:
    created: list[str] = []

    def write() -> str:
        if not name.strip():
            raise PageError("Give the key a name that says what it is for, e.g. `laptop` or `ci`.")
        with context(request).db.session() as session:
            row, key = users.create_key(session, owner, name)
            created.append(key)
            return f"Created key `{row.name}` for `{owner}`. Copy it now: it is not shown again."

    notice, status = _attempt(request, write)
    form = {"user": owner, "name": name} if status != 200 else None
    return _keys(request, owner, notice, status, created[0] if created else "", form)


@router.post("/keys/{key_id}/revoke", dependencies=CHANGE)
def key_revoke(request: Request, key_id: int, owner: Annotated[str, Form(alias="user")] = "") -> HTMLResponse:
    def write() -> str:
        with context(request).db.session() as session:
            row = users.revoke_key(session, key_id)
            label = f"`{row.name}` ({row.prefix}…)" if row.name else f"{row.prefix}…"
        return f"Revoked key {label}; the server refuses it from now on."

    return _keys(request, owner, *_attempt(request, write))


# -- tokens -------------------------------------------------------------------------------------------------------

SCOPE_HELP = {
    "sources:write": "upload to the sources chosen below",
    "repos:read": "install from the authenticated repositories chosen below",
    "admin": "everything, on every source and repository",
}


def _tokens(
    request: Request,
    notice: Notice | None = None,
    status: int = 200,
    created: tuple[str, Token] | None = None,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    app = context(request)
    with app.db.session() as session:
        rows = tokens.list_tokens(session)
        sources = list(session.scalars(select(Source.name).order_by(Source.name)))
        repositories = list(session.scalars(select(Repository).order_by(Repository.name)))
        now = utcnow()
        listed = [
            {
                "jti": t.jti,
                "description": t.description,
                "scopes": tokens.names(t.scopes),
                "sources": tokens.names(t.sources),
                "repos": tokens.names(t.repos),
                "created_at": t.created_at,
                "expires_at": t.expires_at,
                "revoked_at": t.revoked_at,
                "state": tokens.token_state(t, now),
            }
            for t in reversed(rows)
        ]
        repo_rows = [(r.name, r.authenticated) for r in repositories]
    return _page(
        request,
        "tokens.html",
        notice=notice,
        status=status,
        tokens=listed,
        scopes=tokens.SCOPES,
        scope_help=SCOPE_HELP,
        sources=sources,
        repositories=repo_rows,
        created=_created_token(app.settings.server.address, created) if created else None,
        enabled=app.settings.authentication.api_token_auth,
        form=form or {"description": "", "scope": [], "sources": [], "repos": [], "expires": ""},
    )


def _created_token(address: str, created: tuple[str, Token]) -> dict[str, Any]:
    """The new token and the client setup it needs, with the token filled in."""
    token, row = created
    host = urlsplit(address).hostname or "localhost"
    scheme, _, rest = address.rstrip("/").partition("://")
    hints: list[tuple[str, str, str]] = []  # (id, label, text)
    sources = tokens.names(row.sources)
    repos = tokens.names(row.repos)
    scopes = tokens.names(row.scopes)
    if "sources:write" in scopes or "admin" in scopes:
        source = next((s for s in sources if s != tokens.ANY), services.DEFAULT_SOURCE)
        upload = f"{address.rstrip('/')}/upload/pypi/{source}"
        hints.append(
            (
                "hint-twine",
                f"Upload with twine (source `{source}`)",
                f"twine upload --repository-url {upload} -u __token__ -p {token} dist/*",
            )
        )
        hints.append(("hint-uv-publish", "Upload with uv", f"uv publish --publish-url {upload} --token {token} dist/*"))
    if "repos:read" in scopes or "admin" in scopes:
        repo = next((r for r in repos if r != tokens.ANY), services.DEFAULT_REPOSITORY)
        index = f"{scheme}://__token__:{token}@{rest}/{repo}/latest/simple/"
        hints.append(("hint-pip", f"Install with pip (repository `{repo}`)", f"pip install --index-url {index} NAME"))
        hints.append(
            (
                "hint-netrc",
                "Or keep the token in ~/.netrc (pip and uv read it)",
                f"machine {host}\nlogin __token__\npassword {token}",
            )
        )
    return {"token": token, "row": row, "hints": hints}


@router.get("/tokens/")
def tokens_page(request: Request, user: Admin) -> HTMLResponse:
    return _tokens(request)


@router.post("/tokens/", dependencies=CHANGE)
def token_create(
    request: Request,
    description: Annotated[str, Form()] = "",
    scope: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies form defaults
    sources: Annotated[list[str], Form()] = [],  # noqa: B006
    repos: Annotated[list[str], Form()] = [],  # noqa: B006
    expires: Annotated[str, Form()] = "",
) -> HTMLResponse:
    app = context(request)
    created: list[tuple[str, Token]] = []

    def write() -> str:
        expires_at = tokens.parse_expiry_date(expires)
        with app.db.session() as session:
            token, row = tokens.create_token(
                session,
                app.settings.token_secret(),
                app.settings.server.address,
                description,
                scope,
                [tokens.ANY] if tokens.ANY in sources else sources,
                [tokens.ANY] if tokens.ANY in repos else repos,
                expires_at,
            )
            created.append((token, row))
            until = f"expires {formatting.moment(row.expires_at)}" if row.expires_at else "never expires"
            return f"Created token `{row.description}` ({until}). Copy it now: it is not shown again."

    notice, status = _attempt(request, write)
    form = None
    if status != 200:
        form = {"description": description, "scope": scope, "sources": sources, "repos": repos, "expires": expires}
    return _tokens(request, notice, status, created[0] if created else None, form)


@router.post("/tokens/{jti}/revoke", dependencies=CHANGE)
def token_revoke(request: Request, jti: str) -> HTMLResponse:
    def write() -> str:
        with context(request).db.session() as session:
            row = tokens.revoke_token(session, jti)
            return f"Revoked token `{row.description}`; the server refuses it from now on."

    return _tokens(request, *_attempt(request, write))


# -- environments -------------------------------------------------------------------------------------------------


def _environments(request: Request, notice: Notice | None = None, status: int = 200) -> HTMLResponse:
    envs = context(request).environments
    return _page(
        request,
        "environments.html",
        notice=notice,
        status=status,
        environments=envs.list(),
        reap_every=formatting.duration(envs.settings.python.environment_reap_frequency),
    )


@router.get("/environments/")
def environments_page(request: Request, user: Admin) -> HTMLResponse:
    return _environments(request)


@router.post("/environments/{key}/remove", dependencies=CHANGE)
def environment_remove(request: Request, key: str) -> HTMLResponse:
    def write() -> str:
        removed = context(request).environments.remove(key, force=False)
        return f"Removed environment {removed[:12]}; content that needs it again rebuilds it."

    return _environments(request, *_attempt(request, write))


# -- sources ------------------------------------------------------------------------------------------------------


@router.get("/sources/")
def sources_page(request: Request, user: Admin) -> HTMLResponse:
    app = context(request)
    with app.db.session() as session:
        rows = services.list_sources(session)
    return _page(request, "sources.html", sources=rows, default_upstream=app.settings.mirror.upstream)


# -- block rules --------------------------------------------------------------------------------------------------


def _rules(
    request: Request, notice: Notice | None = None, status: int = 200, form: dict[str, str] | None = None
) -> HTMLResponse:
    with context(request).db.session() as session:
        rows = [
            {
                "id": r.id,
                "project": r.project,
                "specifier": r.specifier,
                "repository": repo,
                "reason": r.reason,
                "created_at": r.created_at,
            }
            for r, repo in list_rules(session)
        ]
        repositories = list(session.scalars(select(Repository.name).order_by(Repository.name)))
    form = form or {"project": "", "specifier": "", "repository": "", "reason": ""}
    return _page(request, "policy.html", notice=notice, status=status, rules=rows, repositories=repositories, form=form)


@router.get("/policy/")
def rules_page(request: Request, user: Admin) -> HTMLResponse:
    return _rules(request)


@router.post("/policy/", dependencies=CHANGE)
def rule_create(
    request: Request,
    project: Annotated[str, Form()] = "",
    specifier: Annotated[str, Form()] = "",
    repository: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> HTMLResponse:
    def write() -> str:
        with context(request).db.session() as session:
            rule = create_rule(session, project, specifier, reason, repository or None)
            where = f"repository `{repository}`" if repository else "every repository"
            versions = f"versions `{rule.specifier}`" if rule.specifier else "every version"
            return f"Rule {rule.id}: `{rule.project}` {versions} is blocked in {where}."

    notice, status = _attempt(request, write)
    form = {"project": project, "specifier": specifier, "repository": repository, "reason": reason}
    return _rules(request, notice, status, form if status != 200 else None)


@router.post("/policy/{rule_id}/remove", dependencies=CHANGE)
def rule_remove(request: Request, rule_id: int) -> HTMLResponse:
    def write() -> str:
        with context(request).db.session() as session:
            rule = remove_rule(session, rule_id)
            return f"Removed rule {rule_id} (`{rule.project}`); its versions are served again."

    return _rules(request, *_attempt(request, write))
