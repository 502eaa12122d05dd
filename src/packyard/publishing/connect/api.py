"""The Connect server API that rsconnect-python uses (`/__api__/...`); handlers stay thin.

The contract, with the fields each call reads, is ../shared/research/connect-api.md. Every answer is JSON
with a body (rsconnect treats a 204 as an error), errors are `{"error", "code", "payload"}`, and nothing
here redirects (the client would re-send a POST as a GET). `routing.py` renders its errors.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from packyard import __version__
from packyard.publishing import content as contents
from packyard.publishing import operations, variables
from packyard.publishing.connect import bundle_body
from packyard.publishing.connect.handlers import caller as _caller
from packyard.publishing.connect.handlers import in_thread as _in_thread
from packyard.publishing.connect.handlers import json_body as _json
from packyard.publishing.connect.handlers import server as _server
from packyard.publishing.connect.routing import ConnectRoute
from packyard.publishing.deploy.changes import DELETED, announce
from packyard.publishing.environments.interpreters import find_interpreters
from packyard.publishing.errors import Forbidden, PublishingError
from packyard.publishing.models import User
from packyard.publishing.users import Caller, user_json
from packyard.storage import BlobResponse, StagedBlob

# 2025.06.0+ turns on rsconnect's draft, verify, activate flow; above 2025.11.0 it sends git metadata as a
# multipart upload. Packyard implements both.
CONNECT_VERSION = "2025.12.0"

router = APIRouter(prefix="/__api__", route_class=ConnectRoute)


# -- server ------------------------------------------------------------------------------------------------


@router.get("/server_settings")
async def server_settings(request: Request) -> dict[str, Any]:
    return {
        "version": CONNECT_VERSION,
        "build": f"packyard {__version__}",
        "hostname": request.url.hostname,
        "python": {"enabled": True},
        "license": {"product": "Packyard"},
    }


@router.get("/v1/server_settings/python")
async def python_settings(request: Request) -> dict[str, Any]:
    await _caller(request)
    interpreters = await asyncio.to_thread(find_interpreters, request.app.state.packyard.settings.python.executables)
    installations = [
        {"version": i.version, "cluster_name": "Local", "image_name": "Local", "publishable": True}
        for i in interpreters
    ]
    return {"installations": installations, "api_enabled": True}


@router.get("/v1/user")
async def current_user(request: Request) -> dict[str, Any]:
    caller = await _caller(request)

    def work(session: Any) -> dict[str, Any]:
        return user_json(session.get(User, caller.user_id))

    return await _in_thread(request, work)


# -- content -----------------------------------------------------------------------------------------------


@router.get("/v1/content")
async def list_content(request: Request, name: str | None = None) -> list[dict[str, Any]]:
    caller = await _caller(request)
    server = _server(request)

    def work(session: Any) -> list[dict[str, Any]]:
        items = contents.visible(session, caller, name)
        return [contents.describe(session, caller, c, server) for c in items]

    return await _in_thread(request, work)


@router.post("/v1/content")
async def create_content(request: Request) -> dict[str, Any]:
    caller = await _caller(request)
    body = await _json(request)
    server = _server(request)

    def work(session: Any) -> dict[str, Any]:
        content = contents.create(session, caller, body)
        return contents.content_json(content, caller.guid, server)

    return await _in_thread(request, work)


@router.get("/v1/content/{guid}")
async def get_content(request: Request, guid: str) -> dict[str, Any]:
    caller = await _caller(request)
    server = _server(request)

    def work(session: Any) -> dict[str, Any]:
        content = contents.viewable(session, caller, guid)
        return contents.describe(session, caller, content, server)

    return await _in_thread(request, work)


@router.patch("/v1/content/{guid}")
async def patch_content(request: Request, guid: str) -> dict[str, Any]:
    caller = await _caller(request)
    body = await _json(request)
    server = _server(request)

    content = await operations.patch(request.app.state.packyard, caller, guid, body)
    return await _in_thread(request, lambda s: contents.describe(s, caller, content, server))


@router.delete("/v1/content/{guid}")
async def delete_content(request: Request, guid: str) -> dict[str, Any]:
    caller = await _caller(request)

    def work(session: Any) -> None:
        content = contents.writable(session, caller, guid)
        contents.check_deletable(caller, content)
        session.delete(content)
        announce(session, DELETED, guid, deployer.node)  # every node stops serving it

    deployer = request.app.state.packyard.deployer
    await _in_thread(request, work)
    await deployer.remove(guid)
    return {"guid": guid, "deleted": True}


@router.get("/applications/{content_id}")
async def legacy_application(request: Request, content_id: str) -> dict[str, Any]:
    """rsconnect calls this for `--app-id 25` (an id without a hyphen), then reads `guid`."""
    caller = await _caller(request)

    def work(session: Any) -> dict[str, Any]:
        content = contents.viewable(session, caller, contents.get_by_id(session, content_id).guid)
        return {"id": content.id, "guid": content.guid, "name": content.name, "title": content.title}

    return await _in_thread(request, work)


# -- environment variables -----------------------------------------------------------------------------------


@router.get("/v1/content/{guid}/environment")
async def get_variables(request: Request, guid: str) -> list[str]:
    caller = await _caller(request)
    return await operations.variable_names(request.app.state.packyard, caller, guid)


@router.patch("/v1/content/{guid}/environment")
async def patch_variables(request: Request, guid: str) -> list[str]:
    caller = await _caller(request)
    changes = variables.validate(await _json(request))
    return await operations.set_variables(request.app.state.packyard, caller, guid, changes)


# -- bundles -----------------------------------------------------------------------------------------------


GZIP_MAGIC = b"\x1f\x8b"


@router.post("/v1/content/{guid}/bundles")
async def upload_bundle(request: Request, guid: str) -> dict[str, Any]:
    """The raw tar.gz body (chunked, no Content-Type) or multipart `archive` + `metadata`."""
    caller = await _caller(request)
    context = request.app.state.packyard
    content = await _in_thread(request, lambda s: contents.writable(s, caller, guid))
    limit = context.settings.bundle_max_size
    bundle_body.check_length(request.headers, limit)
    started = time.monotonic()
    staged = context.store.stage()
    metadata: dict[str, Any] = {}
    try:
        if bundle_body.is_multipart(request.headers):
            content_type = request.headers["content-type"]
            metadata = await bundle_body.receive_multipart(content_type, request.stream(), staged, limit)
        else:
            await bundle_body.receive_raw(request.stream(), staged, limit)
        _check_archive(staged)
        seconds = time.monotonic() - started
        digest = await asyncio.to_thread(context.store.commit, staged)
    except BaseException:
        context.store.discard(staged)
        raise

    def work(session: Any) -> dict[str, Any]:
        fresh = contents.writable(session, caller, content.guid)  # again: the role or lock may have changed since
        bundle = contents.add_bundle(session, fresh, digest, staged.size, seconds, metadata)
        return contents.bundle_json(bundle, fresh)

    return await _in_thread(request, work)


def _check_archive(staged: StagedBlob) -> None:
    with staged.open() as f:
        head = f.read(2)
    if not head:
        raise PublishingError("The bundle is empty; upload the .tar.gz that rsconnect makes.")
    if head != GZIP_MAGIC:
        raise PublishingError(
            f"The bundle is not a gzip-compressed tar archive (it starts with {head!r}); "
            "upload the .tar.gz that rsconnect makes."
        )


@router.get("/v1/content/{guid}/bundles")
async def list_bundles(request: Request, guid: str) -> list[dict[str, Any]]:
    caller = await _caller(request)

    def work(session: Any) -> list[dict[str, Any]]:
        content = contents.owned(session, caller, guid)
        return [contents.bundle_json(b, content) for b in contents.bundles(session, content)]

    return await _in_thread(request, work)


@router.get("/v1/content/{guid}/bundles/{bundle_id}")
async def get_bundle(request: Request, guid: str, bundle_id: str) -> dict[str, Any]:
    caller = await _caller(request)

    def work(session: Any) -> dict[str, Any]:
        content = contents.owned(session, caller, guid)
        return contents.bundle_json(contents.get_bundle(session, content, bundle_id), content)

    return await _in_thread(request, work)


@router.delete("/v1/content/{guid}/bundles/{bundle_id}")
async def delete_bundle(request: Request, guid: str, bundle_id: str) -> dict[str, Any]:
    caller = await _caller(request)

    number = await operations.delete_bundle(request.app.state.packyard, caller, guid, bundle_id)
    return {"id": str(number), "deleted": True}


@router.get("/v1/content/{guid}/bundles/{bundle_id}/download")
async def download_bundle(request: Request, guid: str, bundle_id: str) -> BlobResponse:
    caller = await _caller(request)

    def work(session: Any) -> tuple[str, int]:
        content = contents.owned(session, caller, guid)
        bundle = contents.get_bundle(session, content, bundle_id)
        return bundle.sha256, bundle.id

    digest, number = await _in_thread(request, work)
    store = request.app.state.packyard.store  # the same response the pages' download link gives
    return BlobResponse(store, digest, media_type="application/gzip", filename=f"bundle-{number}.tar.gz")


# -- deploys and tasks ---------------------------------------------------------------------------------------


def _requested_bundle(body: Any) -> Any:
    return body.get("bundle_id") if isinstance(body, dict) else None


@router.post("/v1/content/{guid}/deploy", status_code=202)
async def deploy(request: Request, guid: str) -> dict[str, Any]:
    caller = await _caller(request)
    body = await _json(request) or {}
    activate = not (isinstance(body, dict) and body.get("activate") is False)
    context = request.app.state.packyard
    task, bundle_id = await operations.deploy(context, caller, guid, _requested_bundle(body), activate)
    return {"task_id": task.id, "bundle_id": str(bundle_id)}


@router.post("/v1/content/{guid}/build", status_code=202)
async def build(request: Request, guid: str) -> dict[str, Any]:
    caller = await _caller(request)
    body = await _json(request) or {}
    context = request.app.state.packyard
    task, bundle_id = await operations.deploy(context, caller, guid, _requested_bundle(body), build_only=True)
    return {"task_id": task.id, "bundle_id": str(bundle_id)}


@router.get("/v1/tasks/{task_id}")
async def get_task(request: Request, task_id: str, first: int = 0, wait: float = 0) -> dict[str, Any]:
    await _caller(request)
    return await request.app.state.packyard.tasks.poll(task_id, first, min(max(wait, 0.0), 30.0))


# -- logs and environments -------------------------------------------------------------------------------------


@router.get("/v1/content/{guid}/log")
async def content_log(request: Request, guid: str, lines: int = 200) -> dict[str, Any]:
    """The app's output and the deploy logs (Packyard's own endpoint; `packyard content logs` reads the same)."""
    caller = await _caller(request)
    await _in_thread(request, lambda s: contents.owned(s, caller, guid))
    logs = await operations.logs(request.app.state.packyard, guid, lines)
    return {"app": logs.app, "deploy": logs.deploy}


@router.get("/v1/content/{guid}/jobs")
async def content_jobs(request: Request, guid: str) -> list[dict[str, Any]]:
    """The content's running processes, in the shape of Connect's jobs (no history of finished ones is kept)."""
    caller = await _caller(request)
    content = await _in_thread(request, lambda s: contents.owned(s, caller, guid))
    hostname = socket.gethostname()
    return [
        {
            "id": str(process.pid),
            "key": f"{process.bundle_id}-{process.pid}",
            "ppid": os.getpid(),
            "pid": process.pid,
            "app_id": str(content.id),
            "bundle_id": str(process.bundle_id),
            "tag": "run_app",
            "status": 0,  # running
            "start_time": contents.iso(process.started_at),
            "end_time": None,
            "exit_code": None,
            "hostname": hostname,
            "connections": process.in_flight,  # Packyard's: requests and websockets in flight
        }
        for process in operations.processes(request.app.state.packyard, guid)
    ]


@router.get("/v1/content/{guid}/lockfile")
async def lockfile(request: Request, guid: str) -> Any:
    caller = await _caller(request)
    environments = request.app.state.packyard.environments

    def work(session: Any) -> tuple[str | None, str | None]:
        content = contents.owned(session, caller, guid)
        if content.bundle_id is None:
            return None, None
        bundle = contents.get_bundle(session, content, content.bundle_id)
        return bundle.environment_key, bundle.py_version

    key, version = await _in_thread(request, work)
    text = environments.lock_text(key) if key else None
    if text is None:
        raise PublishingError(f"Content `{guid}` has no built environment to export; deploy it first.")
    return PlainTextResponse(text, headers={"Generated-By": f"Packyard {__version__} for Python {version}"})


@router.get("/v1/system/caches/runtime")
async def runtime_caches(request: Request) -> dict[str, Any]:
    caller = await _caller(request)
    _require_admin(caller)
    rows = await asyncio.to_thread(request.app.state.packyard.environments.list)
    versions = sorted({row.python_version for row in rows})
    return {"caches": [{"language": "Python", "version": v, "image_name": "Local"} for v in versions]}


@router.delete("/v1/system/caches/runtime")
async def delete_runtime_cache(request: Request) -> dict[str, Any]:
    caller = await _caller(request)
    _require_admin(caller)
    body = await _json(request) or {}
    if not isinstance(body, dict) or body.get("language", "Python") != "Python":
        raise PublishingError('Send {"language": "Python", "version": "3.11.7", "image_name": "Local"}.')
    context = request.app.state.packyard
    version, dry_run = body.get("version"), bool(body.get("dry_run"))
    removed = await asyncio.to_thread(context.environments.clear_runtime_cache, version, dry_run)
    answer = {"language": "Python", "version": version, "image_name": body.get("image_name", "Local")}
    if dry_run:  # Connect answers a dry run at once, without a task; rsconnect prints "Dry run finished"
        return {**answer, "task_id": None, "environments": removed}
    task = await context.tasks.create("")
    task.log(f"Removed {len(removed)} Python {version or ''} environment(s); content rebuilds on its next start.")
    for key in removed:
        task.log(f"  {key}")
    task.finish()
    return {**answer, "task_id": task.id}


def _require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise Forbidden(f"User `{caller.username}` is not an administrator; this needs role `admin`.")
