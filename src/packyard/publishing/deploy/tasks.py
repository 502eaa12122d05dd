"""Deploy tasks: lines of output that rsconnect long-polls (`GET /v1/tasks/{id}?first=N&wait=S`).

The node that runs a task keeps it in memory, so a poll there wakes on each line, and writes it to the database
in batches (`deploy_tasks`, `deploy_task_lines`), so a poll that reaches any other node reads it from there. While
it runs, the node renews the task's `heartbeat_at`; a task not heard from for LEASE seconds died with its node.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, exists, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from packyard.db import Database, utcnow
from packyard.publishing.errors import NotFound
from packyard.publishing.models import DeployTask, DeployTaskLine

log = logging.getLogger("packyard.publishing")

KEEP_FINISHED = 3600.0  # seconds a finished task stays readable
FLUSH_INTERVAL = 0.2  # a line reaches the database at most this late: one transaction per batch, not per line
HEARTBEAT = 2.0  # how often the running node renews a task's `heartbeat_at` when it has no lines to write
LEASE = 10.0  # a running task not renewed for this long is reported failed: its node stopped
POLL_INTERVAL = 0.25  # how often a node that does not run a task reads it again during a long poll


@dataclass
class Task:
    id: str
    content_guid: str
    log_path: Path | None = None
    lines: list[str] = field(default_factory=list)
    finished: bool = False
    code: int = 0
    error: str = ""
    result: dict[str, Any] | None = None
    finished_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list, repr=False)
    # What the database has: lines up to `_written`, whether it knows the task finished, when it was renewed.
    _written: int = field(default=0, repr=False)
    _written_finish: bool = field(default=False, repr=False)
    _renewed: float = field(default_factory=time.monotonic, repr=False)

    def log(self, line: str) -> None:
        """Append a line; safe from the event loop and from worker threads."""
        with self._lock:
            self.lines.extend(line.splitlines() or [""])
        if self.log_path is not None:
            with self.log_path.open("a") as f:
                f.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + line + "\n")
        self._wake()

    def finish(self, code: int = 0, error: str = "") -> None:
        self.finished, self.code, self.error, self.finished_at = True, code, error, time.monotonic()
        self._wake()

    def _wake(self) -> None:
        for loop, event in list(self._waiters):
            loop.call_soon_threadsafe(event.set)

    async def wait(self, first: int, timeout: float) -> None:
        """Return when there are lines past `first`, the task has finished, or `timeout` passed."""
        if self.finished or len(self.lines) > first or timeout <= 0:
            return
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        self._waiters.append(waiter)
        try:
            while not (self.finished or len(self.lines) > first):
                waiter[1].clear()
                try:
                    await asyncio.wait_for(waiter[1].wait(), timeout)
                except TimeoutError:
                    return
        finally:
            self._waiters.remove(waiter)

    def as_json(self, first: int) -> dict[str, Any]:
        with self._lock:
            last = len(self.lines)
            output = self.lines[first:last]
        finished = self.finished and last == len(self.lines)
        return {
            "id": self.id,
            "output": output,
            "result": self.result,
            "finished": finished,
            "code": self.code if finished else 0,
            "error": self.error if finished else "",
            "last": last,
        }

    def _due(self, now: float) -> bool:
        """Whether the database is behind this task, or its heartbeat is due."""
        if self._written_finish:
            return False
        return self.finished or len(self.lines) > self._written or now - self._renewed >= HEARTBEAT


@dataclass(frozen=True)
class Snapshot:
    """A task as the database had it, from line `first` on: what a node that does not run it answers."""

    id: str
    content_guid: str
    first: int
    lines: list[str]  # from `first`
    last: int
    finished: bool
    code: int
    error: str
    result: dict[str, Any] | None

    def as_json(self, first: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "output": self.lines,
            "result": self.result,
            "finished": self.finished,
            "code": self.code if self.finished else 0,
            "error": self.error if self.finished else "",
            "last": self.last,
        }


class Tasks:
    """This node's tasks in memory and every node's in the database. `node` names this one in the error a reader
    gives when the node running a task stopped."""

    def __init__(self, db: Database, node: str = "") -> None:
        self.db = db
        self.node = node
        self._tasks: dict[str, Task] = {}
        self._writer: asyncio.Task[None] | None = None
        self._writing = threading.Lock()  # one write at a time: the writer's, a flush's, the shutdown's

    async def create(self, content_guid: str, log_path: Path | None = None) -> Task:
        """A new task, in the database before its id is handed out: the next poll may reach another node."""
        self._expire()
        task = Task(id=secrets.token_hex(8), content_guid=content_guid, log_path=log_path)
        await asyncio.to_thread(self._insert, task)
        self._tasks[task.id] = task
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_forever())
        return task

    async def get(self, task_id: str) -> Task | Snapshot:
        """The task, from memory when this node runs it, else as the database has it (every line)."""
        task = self._tasks.get(task_id)
        if task is not None:
            return task
        return await self._read(task_id, 0)

    async def poll(self, task_id: str, first: int, wait: float) -> dict[str, Any]:
        """rsconnect's long poll: the lines past `first` once there are some, the task finished, or `wait` passed."""
        first = max(first, 0)
        task = self._tasks.get(task_id)
        if task is not None:  # this node runs it: wake on each line
            await task.wait(first, wait)
            return task.as_json(first)
        deadline = time.monotonic() + wait
        while True:
            snapshot = await self._read(task_id, first)
            left = deadline - time.monotonic()
            if snapshot.finished or snapshot.last > first or left <= 0:
                return snapshot.as_json(first)
            await asyncio.sleep(min(POLL_INTERVAL, left))

    async def _read(self, task_id: str, first: int) -> Snapshot:
        snapshot = await asyncio.to_thread(self._select, task_id, first)
        if snapshot is None:
            raise NotFound(f"There is no task `{task_id}`; finished tasks are kept for an hour.")
        return snapshot

    async def flush(self) -> None:
        """Write what the database lacks now (tests and shutdown; the writer does it every FLUSH_INTERVAL)."""
        await asyncio.to_thread(self._write_due)

    def close(self) -> None:
        """At shutdown, once the deploys are cancelled: the tasks still running end as failed, and one last write
        leaves them so for every node, instead of waiting out their lease."""
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
        for task in self._tasks.values():
            if not task.finished:
                task.log("Error: the server running this deploy stopped before it finished.")
                why = f"The server running this task (`{self.node}`) stopped before it finished; deploy again."
                task.finish(1, why)
        try:
            self._write_due()
        except Exception:  # the database may be what is going away
            log.warning("Could not write the deploy tasks' last lines at shutdown", exc_info=True)

    async def _write_forever(self) -> None:
        try:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL)
                try:
                    await asyncio.to_thread(self._write_due)
                except Exception:  # the next round writes the same lines again; they were not committed
                    log.warning("Could not write deploy task output to the database; retrying", exc_info=True)
                if all(task._written_finish for task in self._tasks.values()):
                    return
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None

    # -- database steps, run in worker threads ------------------------------------------------------------

    def _insert(self, task: Task) -> None:
        now = utcnow()
        with self.db.session() as session:
            session.add(DeployTask(id=task.id, content_guid=task.content_guid, node=self.node, heartbeat_at=now))
            _delete_old(session, now)

    def _write_due(self) -> None:
        with self._writing:
            self._write_batch()

    def _write_batch(self) -> None:
        now = time.monotonic()
        due = [task for task in list(self._tasks.values()) if task._due(now)]
        if not due:
            return
        batches = []
        for task in due:
            finished = task.finished  # read first: a finished task logs no more lines
            with task._lock:
                lines = task.lines[task._written :]
            batches.append((task, finished, lines))
        stamp = utcnow()
        with self.db.session() as session:
            for task, finished, lines in batches:
                if lines:
                    rows = [
                        {"task_id": task.id, "number": task._written + i, "text": text} for i, text in enumerate(lines)
                    ]
                    session.execute(insert(DeployTaskLine), rows)
                values: dict[str, Any] = {"line_count": task._written + len(lines), "heartbeat_at": stamp}
                if finished:
                    values |= {"finished": True, "code": task.code, "error": task.error, "result": task.result}
                    values["finished_at"] = stamp
                session.execute(update(DeployTask).where(DeployTask.id == task.id).values(**values))
        for task, finished, lines in batches:  # committed
            task._written += len(lines)
            task._written_finish = finished
            task._renewed = now

    def _select(self, task_id: str, first: int) -> Snapshot | None:
        with self.db.session() as session:
            row = session.get(DeployTask, task_id)  # before the lines: its line_count was committed with them
            if row is None:
                return None
            query = select(DeployTaskLine.text).where(
                DeployTaskLine.task_id == task_id,
                DeployTaskLine.number >= first,
                DeployTaskLine.number < row.line_count,
            )
            lines = list(session.scalars(query.order_by(DeployTaskLine.number)))
        finished, code, error = row.finished, row.code, row.error
        silent = (utcnow() - row.heartbeat_at).total_seconds()
        if not finished and silent > LEASE:
            finished, code = True, 1
            error = (
                f"The node running this task (`{row.node}`) stopped before the task finished: nothing was heard from "
                f"it for {silent:.0f} s (since {row.heartbeat_at:%H:%M:%S} UTC). The deploy did not complete; deploy "
                "again."
            )
        return Snapshot(row.id, row.content_guid, first, lines, row.line_count, finished, code, error, row.result)

    def _expire(self) -> None:
        cutoff = time.monotonic() - KEEP_FINISHED
        for task_id, task in list(self._tasks.items()):
            if task.finished and task._written_finish and task.finished_at < cutoff:
                del self._tasks[task_id]


def _delete_old(session: Session, now: datetime) -> None:
    """Tasks finished an hour ago, and those whose node stopped an hour ago, leave with their lines; each content's
    newest task stays, as its deploy log."""
    cutoff = now - timedelta(seconds=KEEP_FINISHED)
    newer = aliased(DeployTask)
    superseded = exists().where(newer.content_guid == DeployTask.content_guid, newer.created_at > DeployTask.created_at)
    old = and_(or_(DeployTask.finished_at < cutoff, DeployTask.heartbeat_at < cutoff), superseded)
    session.execute(delete(DeployTaskLine).where(DeployTaskLine.task_id.in_(select(DeployTask.id).where(old))))
    session.execute(delete(DeployTask).where(old))


def deploy_log(session: Session, guid: str, lines: int) -> list[str]:
    """The last `lines` lines of a content's deploy tasks, whichever nodes ran them, each task's headed by when it
    started and where."""
    if lines <= 0:
        return []
    query = (
        select(DeployTask.id, DeployTask.node, DeployTask.created_at, DeployTaskLine.number, DeployTaskLine.text)
        .join(DeployTaskLine, DeployTaskLine.task_id == DeployTask.id)
        .where(DeployTask.content_guid == guid)
        .order_by(DeployTask.created_at.desc(), DeployTaskLine.number.desc())
        .limit(lines)
    )
    out: list[str] = []
    task = None
    for task_id, node, created, _, text in reversed(session.execute(query).all()):
        if task_id != task:
            task = task_id
            out.append(f"-- task {task_id} on {node or 'a node'}, started {created:%Y-%m-%d %H:%M:%S} UTC --")
        out.append(text)
    return out[-lines:]
