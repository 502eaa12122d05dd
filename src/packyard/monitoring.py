"""`/__health__` for load balancers and `/metrics` for Prometheus, as raw ASGI in front of FastAPI.

Health asks the two things every request needs: the database answers a trivial query, and the blob store
returns a probe blob this server stored at start, each within a second. A load balancer polls it, so checks
are single-flight (concurrent polls share one run) and a hung database costs one thread, not one per poll.
The answer names the failing check and the exception's class, never a message: a driver's message carries
host names, database names and paths, and the endpoint is anonymous. The server log has the details.

`/metrics` names content GUIDs and shows traffic, so it is for administrators: a Packyard token with the
`admin` scope (`Authorization: Bearer`, or Basic `__token__`) or an administrator's API key (`Authorization:
Key`). Connect's `/__ping__` stays the plain liveness answer it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from starlette.types import Receive, Scope, Send

from packyard.auth.authenticator import Authenticator
from packyard.auth.errors import ScopeNotGranted
from packyard.db import Database
from packyard.errors import PackyardError
from packyard.http_errors import send_error
from packyard.publishing.users import Callers, key_from_headers
from packyard.storage import BlobStore

HEALTH = "/__health__"
METRICS = "/metrics"
# What the store must give back: written once at start, read by every health check.
PROBE = b"Packyard health probe: the blob store answers reads.\n"
CHECK_TIMEOUT = 1.0
_JSON = (b"content-type", b"application/json")
_NO_STORE = (b"cache-control", b"no-store")

log = logging.getLogger("packyard.health")


@dataclass
class Result:
    ok: bool
    seconds: float
    error: str = ""  # the exception's class, or what was wrong; no message (see the module docstring)

    def as_json(self) -> dict[str, object]:
        shown: dict[str, object] = {"status": "ok" if self.ok else "failing", "seconds": round(self.seconds, 4)}
        if self.error:
            shown["error"] = self.error
        return shown


class Health:
    def __init__(self, db: Database, store: BlobStore, timeout: float = CHECK_TIMEOUT) -> None:
        self.db = db
        self.store = store
        self.timeout = timeout
        self._running: dict[str, asyncio.Task[Result]] = {}
        self.probe = ""
        try:
            # A blob no row names: anything that ever collects unreferenced blobs must keep this digest.
            self.probe = store.put_bytes(PROBE)
        except Exception:  # any store's failure; the storage check says so on every poll, and the server still starts
            log.exception("Could not store the health probe blob")

    def _database(self) -> None:
        with self.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def _storage(self) -> None:
        if not self.probe:
            raise LookupError("the probe blob could not be stored at start")
        if self.store.read(self.probe) != PROBE:
            raise ValueError("the probe blob came back with other bytes")

    async def _run(self, name: str, check: Callable[[], None]) -> Result:
        started = time.perf_counter()
        try:
            await asyncio.to_thread(check)
        except Exception as exc:
            log.warning("Health check %s failed: %r", name, exc)
            return Result(False, time.perf_counter() - started, type(exc).__name__)
        return Result(True, time.perf_counter() - started)

    async def _shared(self, name: str, check: Callable[[], None]) -> Result:
        task = self._running.get(name)
        if task is None:
            task = self._running[name] = asyncio.create_task(self._run(name, check))
            task.add_done_callback(lambda _t: self._running.pop(name, None))
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except TimeoutError:  # the check goes on in its thread; the next poll waits on the same one
            return Result(False, time.perf_counter() - started, f"no answer within {self.timeout:g} s")

    async def check(self) -> dict[str, Result]:
        database, storage = await asyncio.gather(
            self._shared("database", self._database), self._shared("storage", self._storage)
        )
        return {"database": database, "storage": storage}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            return await send_error(scope, receive, send, PackyardError(f"Use GET or HEAD on `{HEALTH}`."), 405)
        checks = await self.check()
        ok = all(result.ok for result in checks.values())
        document = {
            "status": "ok" if ok else "failing",
            "checks": {name: result.as_json() for name, result in checks.items()},
        }
        body = json.dumps(document).encode()
        headers = [_JSON, _NO_STORE, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200 if ok else 503, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


class MetricsEndpoint:
    """`GET /metrics`: the registries `app.py` chose (one process's, or every worker's summed), for administrators."""

    def __init__(self, auth: Authenticator, callers: Callers, registries: list[CollectorRegistry]) -> None:
        self.auth = auth
        self.callers = callers
        self.registries = registries

    async def _authorize(self, scope: Scope) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if key_from_headers(headers) is not None:
            caller = await self.callers.required(headers)
            if not caller.is_admin:
                raise ScopeNotGranted(f"`{METRICS}` is for administrators; user `{caller.username}` is not one.")
            return
        authorization = headers.get("authorization")
        grant = self.auth.cached(authorization)
        if grant is None:
            grant = await asyncio.to_thread(self.auth.authenticate, authorization)
        grant.require("admin", "server", METRICS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            return await send_error(scope, receive, send, PackyardError(f"Use GET on `{METRICS}`."), 405)
        try:
            await self._authorize(scope)
        except PackyardError as exc:
            return await send_error(scope, receive, send, exc)
        body = await _generate(lambda: b"".join(generate_latest(registry) for registry in self.registries))
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode()), _NO_STORE]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def _generate(render: Callable[[], bytes]) -> Awaitable[bytes]:
    # A few hundred series render in about a millisecond; off the event loop all the same, since the count of
    # content (the GUID label) has no fixed bound.
    return asyncio.to_thread(render)
