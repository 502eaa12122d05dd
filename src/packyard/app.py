"""Build the ASGI application: the hot path (pages, small files) in front of the FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI
from prometheus_client import REGISTRY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packyard import __version__, metrics
from packyard.auth import root_probe
from packyard.auth.authenticator import Authenticator
from packyard.auth.routes import router as sso_router
from packyard.config import Settings
from packyard.context import AppContext
from packyard.errors import DatabaseUnavailable
from packyard.http_errors import install as install_error_handlers
from packyard.http_errors import send_error
from packyard.monitoring import HEALTH, METRICS, Health, MetricsEndpoint
from packyard.publishing.connect.api import router as connect_router
from packyard.publishing.connect.routing import not_found as connect_not_found
from packyard.publishing.connect.sharing import router as sharing_router
from packyard.publishing.environments.admin import check_host
from packyard.publishing.proxy.access import content_resolver, site_resolver
from packyard.publishing.proxy.http import ContentProxy
from packyard.publishing.proxy.origins import Origins
from packyard.repository.cran.routes import router as cran_router
from packyard.repository.serving.hot_path import HotPathApp
from packyard.repository.serving.routes import router as repository_router
from packyard.repository.upload.endpoint import UploadEndpoint, upload_source
from packyard.web.error_pages import not_found as page_not_found
from packyard.web.routes import router as web_router

log = logging.getLogger("packyard")
SYNC_INTERVAL = 0.5


def create_app(settings: Settings) -> ASGIApp:
    context = AppContext.open(settings)
    # Every start says how content runs, loudest when it runs unsandboxed or cannot run at all.
    print(("" if context.sandbox.enabled and not context.sandbox.problem else "WARNING: ") + context.sandbox.status(),
          file=sys.stderr, flush=True)  # fmt: skip

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
            context.tasks.close()  # the lines logged so far reach the database
            await context.supervisor.close()
            if context.figures is not None:
                context.figures.save()  # what this worker counted stays in the sums
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
    api.include_router(cran_router)  # `/{repo}/{snapshot}/src/contrib/...`: R's CRAN-like layout
    api.include_router(sso_router)  # /__api__/token and the device flow: OAuth's JSON
    api.include_router(connect_router)  # ConnectRoute: Connect's JSON errors
    api.include_router(sharing_router)
    api.include_router(web_router)  # PageRoute: error pages, sign-in redirects
    # After every route: the Connect and page paths no route matches get their surface's 404.
    api.router.routes.extend([connect_not_found, page_not_found])
    install_error_handlers(api)  # the repository's errors, and those of paths no surface claims

    app = HotPathApp(context.pages, context.files, context.store, context.auth, context.mirror, api, send_error)
    app.state = api.state  # type: ignore[attr-defined]
    proxy = ContentProxy(content_resolver(context, context.access), send_error, site_resolver(context, context.access))
    requests = metrics.RequestMetrics()
    folder = metrics.multiprocess_folder()
    if folder is None:  # one process: its own registries
        registries = [REGISTRY, metrics.app_registry(requests, context.supervisor.process_counts)]
    else:  # a worker of `--workers N`: every worker's figures, summed
        context.figures = metrics.WorkerFigures(folder, requests, context.supervisor.process_counts)
        context.figures.worker = settings.worker
        registries = [metrics.multiprocess_registry(context.figures)]
    monitors = Monitors(
        Health(context.db, context.store), MetricsEndpoint(context.auth, context.callers, registries), requests
    )
    routed = _with_lifespan(app, UploadEndpoint(context), proxy, api, context.auth, monitors)
    if settings.server.content_address:  # content on an origin of its own, told apart by the Host header
        return Origins(context, proxy, routed, send_error)
    return routed


@dataclass
class Monitors:
    health: Health
    scrape: MetricsEndpoint
    requests: metrics.RequestMetrics


class _StatusOf:
    """A `send` that remembers the status it passed on, for the request metrics."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)


def _with_lifespan(
    app: HotPathApp, upload: UploadEndpoint, proxy: ContentProxy, api: FastAPI, auth: Authenticator, monitors: Monitors
) -> ASGIApp:
    requests = monitors.requests

    async def http(scope: Scope, receive: Receive, send: Send) -> str:
        """Answers one HTTP request; returns its route family."""
        path = scope["path"]
        if path == root_probe.ROOT and (refused := await root_probe.refusal(auth, scope)) is not None:
            await send_error(scope, receive, send, refused)  # posit-keyring's check of its cached token
            return metrics.PAGES
        source = upload_source(scope)
        if source is not None:
            await upload(scope, receive, send, source)
            return metrics.UPLOAD
        if proxy.matches(path):
            await proxy(scope, receive, send)
            return metrics.CONTENT
        if path == HEALTH:
            await monitors.health(scope, receive, send)
            return metrics.OTHER
        if path == METRICS:
            await monitors.scrape(scope, receive, send)
            return metrics.OTHER
        await app(scope, receive, send)
        return metrics.route_family(path)

    async def asgi(scope, receive, send):
        if scope["type"] == "http":
            started = time.perf_counter()
            sending = _StatusOf(send)
            try:
                family = await http(scope, receive, sending)
            except BaseException:  # uvicorn answers 500 when nothing was sent
                requests.observe(
                    metrics.route_family(scope["path"]), sending.status or 500, time.perf_counter() - started
                )
                raise
            return requests.observe(family, sending.status, time.perf_counter() - started)
        if scope["type"] == "websocket" and proxy.matches(scope["path"]):
            return await proxy(scope, receive, send)
        return await api(scope, receive, send)

    return asgi


async def _follow_changes(context: AppContext) -> None:
    unavailable = False  # an outage is said once when it starts and once when it ends, not twice a second
    while True:
        await asyncio.sleep(SYNC_INTERVAL)
        try:
            await asyncio.to_thread(context.sync)
            if context.figures is not None:
                context.figures.save()
            while context.runtime_changes:
                await context.deployer.reconfigure(context.runtime_changes.pop())
            while context.content_changes:
                context.deployer.follow(context.content_changes.pop(0))
        except DatabaseUnavailable:
            if not unavailable:
                log.warning("Cannot read the change log while the database is unavailable; retrying")
            unavailable = True
        except Exception:  # keep following; a database hiccup must not stop cache updates for good
            log.exception("Could not read the change log; retrying")
        else:
            if unavailable:
                log.warning("The database answers again; following the change log")
            unavailable = False
