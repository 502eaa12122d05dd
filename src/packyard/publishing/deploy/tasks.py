"""Deploy tasks: lines of output that rsconnect long-polls (`GET /v1/tasks/{id}?first=N&wait=S`)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packyard.publishing.errors import NotFound

KEEP_FINISHED = 3600.0  # seconds a finished task stays readable


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


class Tasks:
    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def create(self, content_guid: str, log_path: Path | None = None) -> Task:
        self._expire()
        task = Task(id=secrets.token_hex(8), content_guid=content_guid, log_path=log_path)
        self._tasks[task.id] = task
        return task

    def get(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise NotFound(f"There is no task `{task_id}`; finished tasks are kept for an hour.")
        return task

    def _expire(self) -> None:
        cutoff = time.monotonic() - KEEP_FINISHED
        for task_id, task in list(self._tasks.items()):
            if task.finished and task.finished_at < cutoff:
                del self._tasks[task_id]
