"""The processes serving one content's active bundle, grown and shrunk by its runtime settings.

A request takes the least-loaded process with room (`max_conns_per_process`); once the pool's load passes
`load_factor` of what its processes hold, another starts in the background, up to `max_processes`. With every
process full a request waits for a release or a new process, up to the queue timeout. A process unused for
`idle_timeout` stops, down to `min_processes` (zero: the next request starts one and waits for it). A process
that exits on its own is replaced after a backoff when the pool would be empty, or below `min_processes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from packyard.publishing.errors import AppStartError, Busy
from packyard.publishing.runtime.limits import Limits
from packyard.publishing.runtime.process import (
    MAX_BACKOFF,
    STABLE_UPTIME,
    AppProcess,
    ProcessSpec,
    append_log,
    wake,
)

log = logging.getLogger("packyard.runtime")

Starter = Callable[[ProcessSpec, float], Awaitable[AppProcess]]
RETRY_AFTER = 5  # seconds a refused client is told to wait


class Pool:
    def __init__(self, spec: ProcessSpec, limits: Limits, start: Starter, queue_timeout: float) -> None:
        self.spec = spec
        self.guid = spec.guid
        self.bundle_id = spec.bundle_id
        self.limits = limits
        self.queue_timeout = queue_timeout
        self.processes: list[AppProcess] = []
        self.starting = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.retired = False
        self._start = start
        self._backoff = 0.0  # after a crash or a failed start: 1, 2, 4 ... 60 s
        self._not_before = 0.0  # no start for want of capacity before this
        self._replace = False  # a crash emptied the pool: start one again after the backoff
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<Pool {self.guid} bundle {self.bundle_id}: {len(self.processes)} running, {self.starting} starting>"

    # -- the proxy's path -------------------------------------------------------------------------------

    def pick(self, queued: bool = False) -> AppProcess | None:
        """The least-loaded running process with room, counted in flight; None when all are full, or when
        requests wait and this one did not (first come, first served). O(processes), no await: choosing and
        counting cannot be split by another request."""
        if self.waiters and not queued:
            return None
        cap = self.limits.max_conns_per_process
        best = None
        total = 0
        for process in self.processes:
            total += process.in_flight
            if process.in_flight < cap and (best is None or process.in_flight < best.in_flight) and process.alive:
                best = process
        if best is None:
            return None
        best.in_flight += 1
        if total + 1 > self.limits.load_factor * cap * (len(self.processes) + self.starting):
            self._grow(f"{total + 1} connections pass `load_factor` {self.limits.load_factor:g} of what the running "
                       "processes take")  # fmt: skip
        return best

    async def acquire(self) -> AppProcess | None:
        """Wait for a process with room, starting one when the pool may grow; None once the pool is retired (a
        new bundle took over: ask the supervisor again). Busy after the queue timeout, AppStartError when the
        pool is empty and its new process failed."""
        loop = asyncio.get_running_loop()
        empty = not self.processes
        # An empty pool waits for its process to start; a full one for a release, up to the queue timeout.
        deadline = loop.time() + (
            max(self.limits.init_timeout + 1, self.queue_timeout) if empty else self.queue_timeout
        )
        queued = False
        while not self.retired:
            process = self.pick(queued)
            if process is not None:
                return process
            # Start another when those starting cannot take every waiter; a crashed or failed pool waits out its
            # backoff unless it has no process at all.
            if len(self.waiters) + 1 > self.starting * self.limits.max_conns_per_process:
                self._grow("every process is full" if self.processes else "a request came", waiting=True)
            waiter = loop.create_future()
            self.waiters.append(waiter)
            queued = True
            try:
                await asyncio.wait_for(waiter, deadline - loop.time())
            except TimeoutError:
                raise self._busy() from None
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    wake(self.waiters, 1)  # woken, but its client left: the room goes to the next in line
                raise
            finally:
                # Gone unless woken: a request that timed out or whose client left must not hold the queue.
                with contextlib.suppress(ValueError):
                    self.waiters.remove(waiter)
        return None

    # -- changes ----------------------------------------------------------------------------------------------

    def add(self, process: AppProcess) -> None:
        """Serve with `process` (started and answering) from now on."""
        process.limits = self.limits
        process.waiters = self.waiters
        process.last_used = time.monotonic()
        self.processes.append(process)
        self._replace = False
        self._spawn(self._watch(process))
        wake(self.waiters)

    def warm(self, why: str) -> None:
        """Start a process now, before any request asks for one."""
        if len(self.processes) + self.starting < self.limits.max_processes:
            self._start_one(why)

    def configure(self, limits: Limits) -> None:
        """New runtime settings; the next `tend` starts or stops processes to match them."""
        self.limits = limits
        for process in self.processes:
            process.limits = limits
        wake(self.waiters)  # there may be room now

    def retire(self, keep: AppProcess | None = None) -> list[AppProcess]:
        """Stop serving: the processes (but `keep`) are handed back to be stopped, waiting requests ask again."""
        self.retired = True
        for task in self._tasks:
            task.cancel()
        wake(self.waiters)
        processes = [p for p in self.processes if p is not keep]
        self.processes = []
        return processes

    def tend(self, now: float) -> list[AppProcess]:
        """Housekeeping, a few times a second: processes past `max_processes` or idle past `idle_timeout` go
        (returned, to be stopped), `min_processes` are kept, and connections silent past `connection_timeout`
        are cut."""
        limits = self.limits
        retired = []
        if self._replace and self.processes:
            self._replace = False
        spare = len(self.processes) - limits.min_processes
        excess = len(self.processes) - limits.max_processes
        for process in sorted(self.processes, key=lambda p: (p.in_flight, p.last_used)):
            idle = process.in_flight == 0 and now - process.last_used >= limits.idle_timeout
            if excess > 0 or (spare > 0 and idle):
                self.processes.remove(process)
                retired.append(process)
                why = f"over `max_processes` ({limits.max_processes})" if excess > 0 else (
                    f"no connection for {limits.idle_timeout:g} s (`idle_timeout`)")  # fmt: skip
                self._log(f"Stopping process {process.pid}: {why}.")
                excess -= 1
                spare -= 1
        wanted = max(limits.min_processes, 1 if self._replace else 0)
        if now >= self._not_before:
            for _ in range(wanted - len(self.processes) - self.starting):
                self._start_one("replacing the one that exited" if self._replace else
                                f"`min_processes` is {limits.min_processes}")  # fmt: skip
        if limits.connection_timeout:
            for process in self.processes:
                expire_silent(process, now, limits.connection_timeout)
        return retired

    # -- inside ------------------------------------------------------------------------------------------------

    def _grow(self, why: str, waiting: bool = False) -> None:
        if len(self.processes) + self.starting >= self.limits.max_processes:
            return
        if waiting and not self.processes and not self.starting:
            self._start_one(why)  # nothing runs: start now, backoff or not
        elif time.monotonic() >= self._not_before:
            self._start_one(why)

    def _start_one(self, why: str) -> None:
        self.starting += 1
        running = len(self.processes)
        self._log(f"Starting {'another' if running else 'a'} process ({running} running): {why}.")
        self._spawn(self._run_start())

    async def _run_start(self) -> None:
        try:
            process = await self._start(self.spec, self.limits.init_timeout)
        except Exception as exc:
            self.starting -= 1
            self._failed(exc)
            return
        except BaseException:
            self.starting -= 1
            raise
        self.starting -= 1
        if self.retired:
            await process.stop(0)
        else:
            self.add(process)

    def _failed(self, exc: Exception) -> None:
        if not isinstance(exc, AppStartError):
            log.error("Could not start a process of %r", self, exc_info=exc)
        reason = str(exc).partition("\n")[0] or type(exc).__name__
        what = "The restart failed" if self._replace else "A new process did not start"
        self._back_off(ran=0.0)
        self._log(f"{what}: {reason}")
        if not self.processes and not self.starting:
            # Nobody will make room: the requests waiting for this start get its error.
            while self.waiters:
                waiter = self.waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(AppStartError(str(exc)))
        else:
            wake(self.waiters)

    def _back_off(self, ran: float) -> None:
        self._backoff = 1.0 if ran >= STABLE_UPTIME else min(max(self._backoff * 2, 1.0), MAX_BACKOFF)
        self._not_before = time.monotonic() + self._backoff

    async def _watch(self, process: AppProcess) -> None:
        """Notice a process that exits on its own: it leaves the pool, and is replaced after a backoff when the
        pool is left empty (`tend` starts it; a request may start one sooner)."""
        code = await process.wait()
        if process.closed or process not in self.processes:
            return  # stopped on purpose
        self.processes.remove(process)
        self._back_off(time.monotonic() - process.started)
        self._replace = self._replace or not self.processes
        what = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        others = len(self.processes) + self.starting
        after = f"restarting in {self._backoff:g} s" if self._replace else f"{others} other(s) still serving"
        self._log(f"Process {what}; {after}.")
        await process.stop(0)  # collects its output

    def _log(self, line: str) -> None:
        append_log(self.spec.log_path, self.bundle_id, [line])

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _busy(self) -> Busy:
        limits = self.limits
        return Busy(
            f"Content `{self.guid}` is busy: its {len(self.processes)} processes (`max_processes` is "
            f"{limits.max_processes}) each serve {limits.max_conns_per_process} connections "
            f"(`max_conns_per_process`), and none had room within {self.queue_timeout:g} s. "
            "Try again in a few seconds; its owner can raise those settings.",
            RETRY_AFTER,
        )


def expire_silent(process: AppProcess, now: float, timeout: float) -> None:
    """Cut the proxy's connections to `process` on which nothing moved for `timeout` seconds."""
    for exchange in list(process.busy):
        if now - exchange.last_io > timeout:
            exchange.expire()
