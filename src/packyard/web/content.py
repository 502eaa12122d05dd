"""Connect's dashboard: the content a user may see, and each item's tabs (info, runtime, access, variables, logs,
source versions; the Access tab is `access.py`'s). Every check and change goes through the same functions as the
Connect API."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.publishing import content as contents
from packyard.publishing import operations, variables
from packyard.publishing.bundles.manifest import FILE_APP_MODES
from packyard.publishing.errors import Forbidden, NotFound, PublishingError, RuntimeSettingError
from packyard.publishing.models import Bundle, Content, PythonEnvironment, User
from packyard.publishing.runtime import limits
from packyard.storage import BlobResponse
from packyard.web import client_setup
from packyard.web.error_pages import PageRoute
from packyard.web.errors import PageError
from packyard.web.render import render
from packyard.web.session import WebUser, check_csrf, context, signed_in

LOG_LINES = 300
ACTIVATE_WAIT = 30.0  # seconds an activation's form waits for its task before showing the output so far


def _section(request: Request) -> None:
    request.state.section = "content"  # error pages light up the Content nav item


router = APIRouter(include_in_schema=False, dependencies=[Depends(_section)], route_class=PageRoute)
User_ = Annotated[WebUser, Depends(signed_in)]

# (key, label, owner only): the tabs of a content item, in order.
TABS = (
    ("info", "Info", False),
    ("runtime", "Runtime", False),
    ("access", "Access", False),
    ("environment", "Environment variables", True),
    ("logs", "Logs", True),
    ("versions", "Source versions", True),
)
APP_MODE_NAMES = {
    "python-api": "API (WSGI)",
    "python-fastapi": "API (ASGI)",
    "python-dash": "Dash app",
    "python-shiny": "Shiny app",
    "python-streamlit": "Streamlit app",
    "python-bokeh": "Bokeh app",
    "jupyter-static": "Notebook",
    "quarto-static": "Quarto document",
    "static": "Static site",
    "unknown": "Not deployed yet",
}
RUNTIME_LABELS = {
    "min_processes": ("Min processes", "Processes kept running with no traffic; 0 stops the last one when idle."),
    "max_processes": ("Max processes", "The most processes this content runs at once."),
    "max_conns_per_process": ("Max connections per process", "Requests and websockets one process serves at once."),
    "load_factor": ("Load factor", "How full the processes get (0.0 to 1.0) before another one starts."),
    "idle_timeout": ("Idle timeout (seconds)", "A process with no connection for this long stops."),
    "init_timeout": ("Initial timeout (seconds)", "How long a new process has to answer before its start fails."),
    "connection_timeout": ("Connection timeout (seconds)", "A connection silent this long is cut; 0 is never."),
    "read_timeout": ("Read timeout (seconds)", "How long to wait for a request's body; 0 is never."),
    "memory_limit": ("Memory limit (bytes)", "Memory one process may map; an allocation past it fails."),
    "process_limit": ("Process limit", "Processes and threads one process may run, itself included."),
    "open_files_limit": ("Open files limit", "Files and sockets one process may have open at once."),
}


@dataclass
class Item:
    """A content row with what its pages show beside it."""

    content: Content
    owner: str
    can_change: bool

    @property
    def title(self) -> str:
        return self.content.title or self.content.name

    @property
    def kind(self) -> str:
        return APP_MODE_NAMES.get(self.content.app_mode, self.content.app_mode)


def _owners(session: Session) -> dict[int, str]:
    return {user_id: name for user_id, name in session.execute(select(User.id, User.username))}


def _item(session: Session, user: WebUser, guid: str) -> Item:
    """The content if the user may see it; a 404 page otherwise (it does not say whether the content exists)."""
    try:
        content = contents.viewable(session, user.caller, guid)
    except (Forbidden, NotFound):
        raise PageError(
            f"There is no content `{guid}` that you can see; the content list shows what you can open.", 404
        ) from None
    owner = session.scalar(select(User.username).where(User.id == content.owner_id)) or "?"
    return Item(content, owner, contents.can_change(session, user.caller, content))


async def _load(request: Request, user: WebUser, guid: str) -> Item:
    return await operations.in_thread(context(request), lambda s: _item(s, user, guid))


def _require_owner(item: Item, user: WebUser, what: str) -> None:
    if not item.can_change:
        raise PageError(
            f"User `{user.username}` does not own content `{item.content.guid}`; only its owner `{item.owner}`, its "
            f"collaborators and administrators can see its {what}.",
            403,
        )


def _page(request: Request, item: Item, tab: str, *, status: int = 200, **values: Any) -> Response:
    guid = item.content.guid
    tabs = [(key, label, f"/connect/apps/{guid}/{key}") for key, label, owner in TABS if item.can_change or not owner]
    return render(
        request,
        f"content/{tab}.html",
        section="content",
        status=status,
        item=item,
        tab=tab,
        tab_label=next(label for key, label, _ in TABS if key == tab),
        tabs=tabs,
        content_url=_content_url(request, guid),
        **values,
    )


def _content_url(request: Request, guid: str) -> str:
    server = context(request).settings.server
    return (server.content_address or server.address).rstrip("/") + f"/content/{guid}/"  # its own origin if set


def _redirect(guid: str, tab: str, query: str = "") -> RedirectResponse:
    return RedirectResponse(f"/connect/apps/{guid}/{tab}" + (f"?{query}" if query else ""), status_code=303)


# -- the list ----------------------------------------------------------------------------------------------


@router.get("/connect/")
async def content_list(request: Request, user: User_, q: str = "") -> Response:
    def work(session: Session) -> list[Item]:
        owners = _owners(session)
        return [
            Item(c, owners.get(c.owner_id, "?"), contents.can_change(session, user.caller, c))
            for c in contents.visible(session, user.caller)
        ]

    items = await operations.in_thread(context(request), work)
    needle = q.strip().lower()
    shown = [i for i in items if not needle or needle in f"{i.title} {i.content.name} {i.kind} {i.owner}".lower()]
    shown.sort(key=lambda i: i.content.last_deployed_at or i.content.created_at, reverse=True)
    base = context(request).settings.server.address.rstrip("/")
    cacert = client_setup.cacert_option(bool(context(request).settings.server.tls_certificate))
    return render(
        request, "content/list.html", section="content", items=shown, total=len(items), q=q, base=base, cacert=cacert
    )


@router.get("/connect")
@router.get("/connect/apps/{guid}")
@router.get("/connect/apps/{guid}/")
async def content_home(guid: str = "") -> RedirectResponse:
    return RedirectResponse(f"/connect/apps/{guid}/info" if guid else "/connect/", status_code=303)


# -- Info --------------------------------------------------------------------------------------------------


@router.get("/connect/apps/{guid}/info")
async def info_tab(request: Request, user: User_, guid: str) -> Response:
    ctx = context(request)

    def work(session: Session) -> tuple[Item, Bundle | None, PythonEnvironment | None]:
        item = _item(session, user, guid)
        bundle = session.get(Bundle, item.content.bundle_id) if item.content.bundle_id is not None else None
        environment = None
        if bundle is not None and bundle.environment_key:
            environment = session.get(PythonEnvironment, bundle.environment_key)
        return item, bundle, environment

    item, bundle, environment = await operations.in_thread(ctx, work)
    running = operations.processes(ctx, guid) if item.can_change else []
    installed = None
    if environment is not None:
        installed = await asyncio.to_thread(ctx.environments.lock_text, environment.key)
    return _page(
        request,
        item,
        "info",
        bundle=bundle,
        environment=environment,
        requested=environment.packages.splitlines() if environment is not None else [],
        installed=[line for line in (installed or "").splitlines() if line and not line.startswith("#")],
        processes=running,
        serves_files=item.content.app_mode in FILE_APP_MODES,
        now=time.monotonic(),
    )


# -- Runtime -----------------------------------------------------------------------------------------------


def _runtime_rows(item: Item, request: Request) -> list[dict[str, Any]]:
    settings = context(request).settings.scheduler
    rows = []
    for name, value, source in limits.described(item.content, settings):
        label, help_text = RUNTIME_LABELS[name]
        own = getattr(item.content, name)
        rows.append(
            {
                "name": name,
                "label": label,
                "help": help_text,
                "effective": f"{value:g}",
                "source": source,
                "own": "" if own is None else f"{own:g}",
                "default": f"{getattr(settings, name):g}",
            }
        )
    return rows


@router.get("/connect/apps/{guid}/runtime")
async def runtime_tab(request: Request, user: User_, guid: str, saved: int = 0) -> Response:
    item = await _load(request, user, guid)
    return _runtime_page(request, item, saved=bool(saved))


def _runtime_page(
    request: Request,
    item: Item,
    *,
    status: int = 200,
    saved: bool = False,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    rows = _runtime_rows(item, request)
    for row in rows:
        row["value"] = (typed or {}).get(row["name"], row["own"])
        row["error"] = (errors or {}).get(row["name"], "")
    return _page(
        request,
        item,
        "runtime",
        status=status,
        rows=rows,
        saved=saved,
        errors=errors or {},
        serves_files=item.content.app_mode in FILE_APP_MODES,
    )


@router.post("/connect/apps/{guid}/runtime", dependencies=[Depends(check_csrf)])
async def runtime_save(request: Request, user: User_, guid: str) -> Response:
    item = await _load(request, user, guid)
    _require_owner(item, user, "runtime settings")
    form = await request.form()
    typed = {name: str(form.get(name, "")).strip() for name in limits.FIELDS}
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, text in typed.items():
        try:
            changes[name] = None if text == "" else limits.parse(name, text)
            limits.check_value(name, changes[name])
        except RuntimeSettingError as exc:
            errors[name] = exc.message
    if not errors:
        try:
            await operations.patch(context(request), user.caller, guid, changes)
        except RuntimeSettingError as exc:
            errors[exc.field or "min_processes"] = exc.message
    if errors:
        return _runtime_page(request, item, status=400, typed=typed, errors=errors)
    return _redirect(guid, "runtime", "saved=1")


# -- Environment variables ---------------------------------------------------------------------------------


async def _variables_page(
    request: Request,
    user: WebUser,
    item: Item,
    *,
    status: int = 200,
    notice: str = "",
    error: str = "",
    typed_name: str = "",
) -> Response:
    _require_owner(item, user, "environment variables")
    names = await operations.variable_names(context(request), user.caller, item.content.guid)
    return _page(
        request, item, "environment", status=status, names=names, notice=notice, error=error, typed_name=typed_name
    )


@router.get("/connect/apps/{guid}/environment")
async def environment_tab(request: Request, user: User_, guid: str, saved: str = "", deleted: str = "") -> Response:
    item = await _load(request, user, guid)
    notice = ""
    if saved:
        notice = f"Saved `{saved}`; the content's processes restart with it."
    elif deleted:
        notice = f"Deleted `{deleted}`; the content's processes restart without it."
    return await _variables_page(request, user, item, notice=notice)


@router.post("/connect/apps/{guid}/environment", dependencies=[Depends(check_csrf)])
async def environment_save(
    request: Request,
    user: User_,
    guid: str,
    name: Annotated[str, Form()] = "",
    value: Annotated[str, Form()] = "",
    delete: Annotated[str, Form()] = "",
) -> Response:
    item = await _load(request, user, guid)
    _require_owner(item, user, "environment variables")
    name = name.strip()
    try:
        if not name:
            raise PublishingError("Give the variable a name, e.g. `API_URL`.")
        changes = variables.validate([{"name": name, "value": None if delete else value}])
        await operations.set_variables(context(request), user.caller, guid, changes)
    except PublishingError as exc:
        if delete:
            return await _variables_page(request, user, item, status=exc.status_code, notice="", error=exc.message)
        return await _variables_page(request, user, item, status=exc.status_code, error=exc.message, typed_name=name)
    return _redirect(guid, "environment", ("deleted=" if delete else "saved=") + name)


# -- Logs --------------------------------------------------------------------------------------------------


@router.get("/connect/apps/{guid}/logs")
async def logs_tab(request: Request, user: User_, guid: str) -> Response:
    item = await _load(request, user, guid)
    _require_owner(item, user, "logs")
    logs = await operations.logs(context(request), guid, LOG_LINES)
    return _page(request, item, "logs", logs=logs, lines=LOG_LINES, read_at=time.strftime("%H:%M:%S"))


# -- Source versions ---------------------------------------------------------------------------------------


@router.get("/connect/apps/{guid}/versions")
async def versions_tab(request: Request, user: User_, guid: str, task: str = "", deleted: str = "") -> Response:
    ctx = context(request)

    def work(session: Session) -> tuple[Item, list[Bundle]]:
        item = _item(session, user, guid)
        _require_owner(item, user, "source versions")
        return item, contents.bundles(session, item.content)

    item, bundles = await operations.in_thread(ctx, work)
    shown_task = None
    if task:
        try:
            shown_task = await operations.task_of(ctx, guid, task)
        except NotFound as exc:
            raise PageError(exc.message, 404) from None
    return _page(request, item, "versions", bundles=bundles, task=shown_task, deleted=deleted)


@router.post("/connect/apps/{guid}/versions/{bundle_id}/activate", dependencies=[Depends(check_csrf)])
async def version_activate(request: Request, user: User_, guid: str, bundle_id: str) -> Response:
    item = await _load(request, user, guid)
    _require_owner(item, user, "source versions")
    task, _ = await operations.deploy(context(request), user.caller, guid, bundle_id)
    deadline = time.monotonic() + ACTIVATE_WAIT
    while not task.finished and time.monotonic() < deadline:
        await task.wait(len(task.lines), deadline - time.monotonic())
    return _redirect(guid, "versions", f"task={task.id}")


@router.post("/connect/apps/{guid}/versions/{bundle_id}/delete", dependencies=[Depends(check_csrf)])
async def version_delete(request: Request, user: User_, guid: str, bundle_id: str) -> Response:
    item = await _load(request, user, guid)
    _require_owner(item, user, "source versions")
    await operations.delete_bundle(context(request), user.caller, guid, bundle_id)
    return _redirect(guid, "versions", f"deleted={bundle_id}")


@router.get("/connect/apps/{guid}/versions/{bundle_id}/download")
async def version_download(request: Request, user: User_, guid: str, bundle_id: str) -> Response:
    ctx = context(request)

    def work(session: Session) -> Bundle:
        item = _item(session, user, guid)
        _require_owner(item, user, "source versions")
        return contents.get_bundle(session, item.content, bundle_id)

    bundle = await operations.in_thread(ctx, work)
    return BlobResponse(ctx.store, bundle.sha256, media_type="application/gzip", filename=f"bundle-{bundle.id}.tar.gz")


@router.get("/connect/apps/{guid}/{tab}")
async def unknown_tab(request: Request, user: User_, guid: str, tab: str) -> Response:
    await _load(request, user, guid)  # a content the user may not see stays a plain 404
    names = ", ".join(key for key, _, _ in TABS)
    raise PageError(f"Content pages have no tab `{tab}`; open one of {names}.", 404)
