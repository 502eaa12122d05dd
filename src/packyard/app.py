"""Build the ASGI application: the hot path (pages, small files) in front of the FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from packyard import __version__
from packyard.config import Settings
from packyard.context import AppContext
from packyard.errors import PackyardError
from packyard.http_errors import error_response, send_error
from packyard.publishing.connect.api import connect_error
from packyard.publishing.connect.api import router as publishing_router
from packyard.publishing.environments.admin import check_host
from packyard.publishing.proxy.access import ContentAccess, content_resolver, site_resolver
from packyard.publishing.proxy.http import ContentProxy
from packyard.repository.serving.hot_path import HotPathApp
from packyard.repository.serving.routes import router as repository_router
from packyard.repository.upload.endpoint import UploadEndpoint, upload_source
from packyard.web import error_pages
from packyard.web.routes import router as web_router

log = logging.getLogger("packyard")
SYNC_INTERVAL = 0.5


def create_app(settings: Settings) -> ASGIApp:
    context = AppContext.open(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_follow_changes(context))
        preload = asyncio.create_task(asyncio.to_thread(context.pages.preload))
        reaper = asyncio.create_task(context.environments.reap_forever())
        # Finding the host's interpreters takes a second; do it now rather than in the first deploy.
        interpreters = asyncio.create_task(asyncio.to_thread(check_host, settings.python))
        warm = asyncio.create_task(context.deployer.warm_up())  # content with `min_processes` starts now
        try:
            yield
        finally:
            task.cancel()
            preload.cancel()
            reaper.cancel()
            interpreters.cancel()
            warm.cancel()
            context.deployer.close()
            await context.supervisor.close()
            await context.mirror.close()
            context.db.dispose()

    api = FastAPI(
        title="Packyard",
        version=__version__,
        lifespan=lifespan,
        docs_url="/__api__/docs",
        openapi_url="/__api__/openapi.json",
        redoc_url=None,
    )
    api.state.packyard = context
    api.include_router(repository_router)
    api.include_router(publishing_router)
    api.include_router(web_router)
    error_pages.install(api)

    @api.exception_handler(PackyardError)
    async def _packyard_error(request: Request, exc: PackyardError):
        if error_pages.is_page(request):
            return error_pages.error_page(request, *error_pages.page_message(request, exc))
        if _is_connect_api(request.url.path):
            return connect_error(exc)
        return error_response(request, exc)

    @api.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        if error_pages.is_page(request):
            return error_pages.error_page(request, *error_pages.page_message(request, exc))
        message = {
            404: f"Nothing is served at `{request.url.path}`; repository indexes live at `/<repo>/latest/simple/`.",
            405: f"Method {request.method} is not allowed on `{request.url.path}`.",
        }.get(exc.status_code, str(exc.detail))
        if _is_connect_api(request.url.path):
            return connect_error(PackyardError(message), exc.status_code)
        return error_response(request, PackyardError(message), exc.status_code)

    @api.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        if error_pages.is_page(request):
            return error_pages.error_page(request, *error_pages.page_message(request, exc))
        error = PackyardError(f"Bad request: {exc.errors()[0].get('msg')}.")
        if _is_connect_api(request.url.path):
            return connect_error(error, 400)
        return error_response(request, error, 400)

    app = HotPathApp(context.pages, context.files, context.store, context.auth, context.mirror, api, send_error)
    app.state = api.state  # type: ignore[attr-defined]
    access = ContentAccess(context)
    proxy = ContentProxy(content_resolver(context, access), send_error, site_resolver(context, access))
    return _with_lifespan(app, UploadEndpoint(context), proxy, api)


def _is_connect_api(path: str) -> bool:
    """Paths of the Connect API, whose clients read errors as `{"error", "code"}`."""
    return path.startswith(("/__api__/v1/", "/__api__/server_settings", "/__api__/applications/"))


def _with_lifespan(app: HotPathApp, upload: UploadEndpoint, proxy: ContentProxy, api: FastAPI) -> ASGIApp:
    async def asgi(scope, receive, send):
        if scope["type"] == "http":
            source = upload_source(scope)
            if source is not None:
                return await upload(scope, receive, send, source)
            if proxy.matches(scope["path"]):
                return await proxy(scope, receive, send)
            return await app(scope, receive, send)
        if scope["type"] == "websocket" and proxy.matches(scope["path"]):
            return await proxy(scope, receive, send)
        return await api(scope, receive, send)

    return asgi


async def _follow_changes(context: AppContext) -> None:
    while True:
        await asyncio.sleep(SYNC_INTERVAL)
        try:
            await asyncio.to_thread(context.sync)
            while context.runtime_changes:
                await context.deployer.reconfigure(context.runtime_changes.pop())
        except Exception:  # keep following; a database hiccup must not stop cache updates for good
            log.exception("Could not read the change log; retrying")
