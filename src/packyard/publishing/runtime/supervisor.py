"""Which processes serve each content: a pool for its active bundle (pool.py) and at most one draft.

Activating a bundle puts a new pool in place; the old pool's processes finish their requests in flight, then
stop. A few times a second the supervisor tends every pool: idle processes stop, `min_processes` are kept,
crashed ones are replaced after their backoff, and connections silent past `connection_timeout` are cut.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from packyard.publishing.runtime.limits import Limits
from packyard.publishing.runtime.pool import Pool, expire_silent
from packyard.publishing.runtime.process import DRAIN_GRACE, TERM_GRACE, AppProcess, ProcessSpec, read_log_tail, start
from packyard.publishing.sandbox import Quota, Sandbox

log = logging.getLogger("packyard.runtime")

TEND_INTERVAL = 0.25


class Supervisor:
    def __init__(self, sandbox: Sandbox, defaults: Limits | None = None, queue_timeout: float = 30.0) -> None:
        self.sandbox = sandbox
        self.defaults = defaults or Limits()
        self.queue_timeout = queue_timeout
        self._limits: dict[str, Limits] = {}
        self._pools: dict[str, Pool] = {}
        self._drafts: dict[str, AppProcess] = {}
        self._logs: dict[str, Path] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._tending: asyncio.Task[None] | None = None

    def limits(self, guid: str) -> Limits:
        return self._limits.get(guid, self.defaults)

    def configure(self, guid: str, limits: Limits) -> None:
        """The runtime settings of a content from now on; its pool follows at its next tending."""
        self._limits[guid] = limits
        pool = self._pools.get(guid)
        if pool is not None:
            pool.configure(limits)
        draft = self._drafts.get(guid)
        if draft is not None:
            draft.limits = limits

    async def start(self, spec: ProcessSpec, init_timeout: float | None = None) -> AppProcess:
        """Start the app and return once it answers HTTP within `init_timeout` seconds (the content's setting
        by default); AppStartError with its last output otherwise. It serves nothing until activated."""
        self._logs[spec.guid] = spec.log_path
        limits = self.limits(spec.guid)
        process = await start(spec, init_timeout or limits.init_timeout, self.sandbox, quota(limits))
        process.limits = limits
        return process

    # -- routing ------------------------------------------------------------------------------------------

    def activate(self, process: AppProcess, limits: Limits | None = None) -> None:
        """Route /content/<guid>/ to a new pool holding `process` now; the previous processes drain and stop."""
        if limits is not None:
            self._limits[process.guid] = limits
        draft = self._drafts.get(process.guid)
        if draft is process:
            del self._drafts[process.guid]
        elif draft is not None and draft.bundle_id == process.bundle_id:
            # A draft told its own URL at start (Dash, Bokeh) is replaced by a fresh process for the active URL.
            del self._drafts[process.guid]
            self._stop_later(draft, DRAIN_GRACE)
        pool = self.open(process.spec, keep=process)
        pool.add(process)
        self._tend(pool)  # `min_processes` start now

    def open(self, spec: ProcessSpec, keep: AppProcess | None = None) -> Pool:
        """A pool for the bundle of `spec` in place of the content's current one, with no process yet: the
        first request starts one (after a server restart), and tending starts `min_processes`."""
        self._logs[spec.guid] = spec.log_path
        pool = Pool(spec, self.limits(spec.guid), self.start, self.queue_timeout)
        old = self._pools.get(spec.guid)
        self._pools[spec.guid] = pool
        if old is not None:
            for process in old.retire(keep):
                self._stop_later(process, DRAIN_GRACE)
        if self._tending is None:
            self._tending = asyncio.create_task(self._tend_forever())
        return pool

    def pool(self, guid: str) -> Pool | None:
        return self._pools.get(guid)

    def add_draft(self, process: AppProcess, limits: Limits | None = None) -> None:
        """Serve `process` at /content/<guid>/_bundle<id>/, replacing an older draft of the same content."""
        if limits is not None:
            self._limits[process.guid] = limits
        process.limits = self.limits(process.guid)
        old = self._drafts.get(process.guid)
        self._drafts[process.guid] = process
        if old is not None and old is not process and not self._serves(old):
            self._stop_later(old, DRAIN_GRACE)

    def acquire(self, guid: str, bundle_id: int | None = None) -> AppProcess | None:
        """A process with room, counted in flight: the active pool's, or with `bundle_id` that draft's (or the
        active pool's when it runs that bundle). None when all are full or none runs: see `wait_for`."""
        if bundle_id is not None:
            draft = self._drafts.get(guid)
            if draft is not None and draft.bundle_id == bundle_id and draft.alive:
                draft.in_flight += 1
                return draft
        pool = self._pools.get(guid)
        if pool is not None and (bundle_id is None or pool.bundle_id == bundle_id):
            return pool.pick()
        return None

    async def wait_for(self, guid: str, bundle_id: int | None = None) -> AppProcess | None:
        """Like `acquire`, waiting for room or for a process to start; None when no pool or draft serves it."""
        while True:
            process = self.acquire(guid, bundle_id)
            if process is not None:
                return process
            pool = self._pools.get(guid)
            if pool is None or (bundle_id is not None and pool.bundle_id != bundle_id):
                return None
            process = await pool.acquire()
            if process is not None:
                return process  # else the pool was replaced while we waited: ask the new one

    def find(self, guid: str, bundle_id: int | None = None) -> AppProcess | None:
        """The least-loaded running process of the content (or of its draft `bundle_id`), not counted."""
        if bundle_id is not None:
            draft = self._drafts.get(guid)
            if draft is not None and draft.bundle_id == bundle_id and draft.alive:
                return draft
        pool = self._pools.get(guid)
        if pool is None or (bundle_id is not None and pool.bundle_id != bundle_id):
            return None
        return min((p for p in pool.processes if p.alive), key=lambda p: p.in_flight, default=None)

    def processes(self, guid: str) -> list[AppProcess]:
        """The content's running processes: its pool's, then its draft."""
        pool = self._pools.get(guid)
        running = list(pool.processes) if pool is not None else []
        draft = self._drafts.get(guid)
        if draft is not None and draft not in running and draft.alive:
            running.append(draft)
        return running

    def process_counts(self) -> list[tuple[str, int]]:
        """(guid, running processes) of every content with a pool or a draft, for `/metrics`."""
        guids = list(self._pools) + [guid for guid in self._drafts if guid not in self._pools]
        return [(guid, sum(p.alive for p in self.processes(guid))) for guid in guids]

    def promote(self, guid: str, bundle_id: int) -> bool:
        """Make the running draft of `bundle_id` the active bundle without starting a new process; True when
        that bundle is active now (or was already)."""
        draft = self._drafts.get(guid)
        if draft is not None and draft.bundle_id == bundle_id and draft.alive:
            self.activate(draft)
            return True
        pool = self._pools.get(guid)
        return pool is not None and pool.bundle_id == bundle_id

    # -- stopping ---------------------------------------------------------------------------------------------

    async def stop_content(self, guid: str, grace: float = TERM_GRACE) -> None:
        self._limits.pop(guid, None)
        pool = self._pools.pop(guid, None)
        processes = pool.retire() if pool is not None else []
        draft = self._drafts.pop(guid, None)
        if draft is not None and draft not in processes:
            processes.append(draft)
        await asyncio.gather(*(p.stop(grace) for p in processes))

    async def stop_draft(self, guid: str, bundle_id: int) -> None:
        """Stop the draft of `bundle_id`, whose bundle was deleted: no grace for its requests in flight."""
        draft = self._drafts.get(guid)
        if draft is None or draft.bundle_id != bundle_id:
            return
        del self._drafts[guid]
        if not self._serves(draft):
            await draft.stop(0)

    async def close(self) -> None:
        """Stop every process (server shutdown: the front server has already finished its requests)."""
        if self._tending is not None:
            self._tending.cancel()
        processes = [p for pool in self._pools.values() for p in pool.retire()]
        processes += [d for d in self._drafts.values() if d not in processes]
        self._pools.clear()
        self._drafts.clear()
        await asyncio.gather(*(p.stop(TERM_GRACE) for p in processes), *self._background, return_exceptions=True)

    def log_tail(self, guid: str, lines: int) -> list[str]:
        path = self._logs.get(guid)
        return read_log_tail(path, lines) if path is not None else []

    def _serves(self, process: AppProcess) -> bool:
        pool = self._pools.get(process.guid)
        return pool is not None and process in pool.processes

    def _stop_later(self, process: AppProcess, grace: float) -> None:
        task = asyncio.create_task(process.stop(grace))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _tend(self, pool: Pool) -> None:
        for process in pool.tend(time.monotonic()):
            self._stop_later(process, DRAIN_GRACE)

    async def _tend_forever(self) -> None:
        while True:
            await asyncio.sleep(TEND_INTERVAL)
            for pool in list(self._pools.values()):
                try:
                    self._tend(pool)
                except Exception:  # one content's trouble must not stop the others' housekeeping
                    log.exception("Could not tend %r", pool)
            now = time.monotonic()
            for draft in list(self._drafts.values()):
                if draft.limits.connection_timeout:
                    expire_silent(draft, now, draft.limits.connection_timeout)


def quota(limits: Limits) -> Quota:
    """What a process's sandbox enforces; its private /tmp may hold as much as its memory limit."""
    return Quota(limits.memory_limit, limits.process_limit, limits.open_files_limit, tmp=limits.memory_limit)
