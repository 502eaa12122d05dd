"""One app process: the content's own Python in its sandbox, on a Unix socket, its output copied to the content's log.

Each process runs `harness.py` on a listening Unix socket this server bound in a folder only the server can reach,
so no other content can connect to it and only the proxy sends it requests. The child's output goes to the
content's log, line by line with a timestamp and the bundle id. Which processes serve a content is the
supervisor's business (supervisor.py, pool.py); stopping one lets its requests in flight finish first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from packyard.publishing.deploy.launchers import KINDS
from packyard.publishing.errors import AppStartError
from packyard.publishing.runtime.limits import Limits
from packyard.publishing.sandbox import Mount, Quota, Sandbox, python_mounts

log = logging.getLogger("packyard.runtime")

HARNESS = Path(__file__).with_name("harness.py")
HARNESS_INSIDE = "/run/packyard/harness.py"  # where a sandboxed app sees it
# An old process keeps serving the requests it has for this long after a redeploy.
DRAIN_GRACE = 30.0
# After SIGTERM, uvicorn finishes open requests and runs the shutdown lifespan; then it is killed.
TERM_GRACE = 5.0
POLL_INTERVAL = 0.025
MAX_BACKOFF = 60.0
# A process that ran this long crashed for a new reason: restart it quickly again.
STABLE_UPTIME = 60.0
TAIL_LINES = 20
# Connections queue here while the app imports, so the first probe is answered the moment it is ready.
LISTEN_BACKLOG = 1024


@dataclass(frozen=True)
class ProcessSpec:
    guid: str
    bundle_id: int
    kind: str  # what harness.py runs: launchers.KINDS
    entrypoint: str
    python: Path  # the content environment's python
    cwd: Path  # the extracted bundle
    env: dict[str, str]  # the content's variables plus what Packyard sets; nothing else of the server's
    log_path: Path  # the content's log file, appended to
    prefix: str = ""  # the URL prefix the app is told when it starts, if its kind needs one (Dash, Bokeh)
    full_path: bool = False  # its routes include the prefix: the proxy forwards the full path


class Closeable(Protocol):
    def close(self) -> None: ...


class Exchange(Protocol):
    """A proxy connection in use: when data last moved on it, and how to cut it off."""

    last_io: float

    def expire(self) -> None: ...


class Output:
    """A child's stdout: the read end of its pipe, read as the caller asks, closed once by this object alone.

    Not `loop.connect_read_pipe`: uvloop's pipe transport closes the descriptor itself (libuv) and then the file
    object it was given closes it again, or that object's finalizer does, at a garbage collection that may come
    long after. By then the number may name another file opened meanwhile by any thread, often one of SQLite's
    (`packyard.db`, `-wal`, `-shm`): SQLite answers every statement with `disk I/O error` from then on, and the
    close also drops the server's locks on the database."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self._loop = loop

    async def read(self, size: int) -> bytes:
        """Up to `size` bytes as soon as any arrive; b"" at end of file, when the pipe has been closed."""
        while self._fd >= 0:
            try:
                data = os.read(self._fd, size)
            except BlockingIOError:
                await self._readable()
                continue
            if not data:
                self.close()
            return data
        return b""

    async def _readable(self) -> None:
        ready: asyncio.Future[None] = self._loop.create_future()
        fd = self._fd

        def wake() -> None:
            if not ready.done():  # it may run again before this task resumes
                ready.set_result(None)

        self._loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            self._loop.remove_reader(fd)

    def close(self) -> None:
        """Close the pipe (idempotent); a read waiting on it must have been cancelled first."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            self._loop.remove_reader(fd)
            os.close(fd)


class Child:
    """The part of asyncio's `Process` the supervisor uses, over a `subprocess.Popen`. Popen starts the child
    with vfork; uvloop's subprocess support forks, copying the server's page tables on every app start."""

    def __init__(self, popen: subprocess.Popen[bytes], stdout: Output) -> None:
        self.pid = popen.pid
        self.stdout = stdout
        self._popen = popen
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @classmethod
    def attach(cls, popen: subprocess.Popen[bytes], stdout: Output) -> Child:
        """Follow `popen`, started with its stdout on the pipe `stdout` reads (never `stdout=PIPE`: see Output)."""
        loop = asyncio.get_running_loop()
        child = cls(popen, stdout)
        try:  # a pidfd becomes readable when the process exits: no thread, no SIGCHLD handler
            pidfd = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):
            waiter = asyncio.ensure_future(asyncio.to_thread(popen.wait))
            waiter.add_done_callback(lambda _w: child._reaped())
        else:

            def exited() -> None:
                loop.remove_reader(pidfd)
                os.close(pidfd)
                popen.wait()
                child._reaped()

            loop.add_reader(pidfd, exited)
        return child

    def hang_up(self) -> None:
        """Close the child's stdin: the harness takes end of file as the signal to shut down gracefully."""
        if self._popen.stdin is not None and not self._popen.stdin.closed:
            with contextlib.suppress(OSError):
                self._popen.stdin.close()

    def _reaped(self) -> None:
        if self._popen.stdin is not None:
            self._popen.stdin.close()
        if not self._exited.done():
            self._exited.set_result(self._popen.returncode)

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


class AppProcess:
    """One running app. The proxy counts `in_flight` (a request or a websocket: one connection) until it calls
    `release()`, keeps idle keep-alive connections in `connections` and those in use in `busy`."""

    def __init__(self, spec: ProcessSpec, proc: Child, address: str) -> None:
        self.spec = spec
        self.guid = spec.guid
        self.bundle_id = spec.bundle_id
        self.address = address  # the Unix socket it serves
        self.pid = proc.pid
        self.started_at = datetime.now(UTC)
        self.started = time.monotonic()
        self.in_flight = 0
        self.last_used = self.started  # when in_flight last went down; the idle timeout counts from it
        self.limits = Limits()  # the content's runtime settings; its pool keeps them current
        # Requests waiting for room in this process's pool (shared with it); a release wakes one.
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.connections: deque[Closeable] = deque()
        self.busy: set[Exchange] = set()
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        # Set once the process is being signalled: the proxy must not send it new requests.
        self.closed = False
        self._proc = proc
        self._output = asyncio.create_task(self._pump_output())
        self._stopping: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<AppProcess {self.guid} bundle {self.bundle_id} pid {self.pid} at {self.address}>"

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @property
    def alive(self) -> bool:
        return not self.closed and self._proc.returncode is None

    async def wait(self) -> int:
        return await self._proc.wait()

    def release(self) -> None:
        """The proxy is done with one connection counted in `in_flight`."""
        self.in_flight -= 1
        self.last_used = time.monotonic()
        if self.waiters:
            wake(self.waiters, 1)

    async def stop(self, grace: float = DRAIN_GRACE) -> None:
        """Let in-flight requests finish (up to `grace` seconds), then SIGTERM, then SIGKILL. Idempotent."""
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._stop(grace))
        await asyncio.shield(self._stopping)

    async def _stop(self, grace: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.in_flight and self._proc.returncode is None and loop.time() < deadline:
            await asyncio.sleep(POLL_INTERVAL)
        # No await between the check above and this flag: a request the proxy counts from now on sees it.
        self.closed = True
        self.close_connections()
        # Not SIGTERM: in a sandbox it would reach bubblewrap, which dies and takes the app down at once.
        self._proc.hang_up()
        try:
            await asyncio.wait_for(self._proc.wait(), max(deadline - loop.time(), TERM_GRACE))
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await self._proc.wait()
        await self._drain_output()
        _unlink(self.address)

    def close_connections(self) -> None:
        while self.connections:
            self.connections.pop().close()

    async def kill(self) -> None:
        self.closed = True
        self.close_connections()
        self._signal(signal.SIGKILL)
        await self._proc.wait()
        await self._drain_output()
        _unlink(self.address)

    def _signal(self, sig: signal.Signals) -> None:
        # The child leads its own process group, so whatever the app spawned goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def _drain_output(self) -> None:
        # A grandchild that escaped the process group could hold the pipe open forever: stop reading it then.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._output), 2.0)
        if not self._output.done():
            self._output.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._output
        self._proc.stdout.close()

    async def _pump_output(self) -> None:
        stream = self._proc.stdout
        assert stream is not None
        pending = b""
        try:
            while chunk := await stream.read(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                if lines:
                    self._write(lines)
                if len(pending) > 65536:  # a very long line without a newline: write what we have
                    self._write([pending])
                    pending = b""
            if pending:
                self._write([pending])
        except Exception:  # the log must never take the process down with it
            log.exception("Could not copy the output of %r to %s", self, self.spec.log_path)

    def _write(self, lines: list[bytes]) -> None:
        text = [line.decode("utf-8", "replace").rstrip("\r") for line in lines]
        self.tail.extend(text)
        append_log(self.spec.log_path, self.bundle_id, text)


async def start(spec: ProcessSpec, init_timeout: float, sandbox: Sandbox, quota: Quota) -> AppProcess:
    """Start the app in its sandbox and return once it answers HTTP within `init_timeout` seconds; AppStartError
    with its last output otherwise."""
    if spec.kind not in KINDS:
        raise ValueError(f"ProcessSpec.kind is {spec.kind!r}; use one of {sorted(KINDS)}")
    try:
        sandbox.check()
    except Exception as exc:
        raise AppStartError(f"The app did not start: {exc}") from exc
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    process = await _spawn(spec, sandbox, quota)
    try:
        await _wait_ready(process, init_timeout)
    except BaseException:
        await asyncio.shield(process.kill())
        raise
    return process


async def _wait_ready(process: AppProcess, timeout: float) -> None:
    probe = asyncio.create_task(_probe(process.address))
    exited = asyncio.create_task(process.wait())
    try:
        await asyncio.wait({probe, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        probe.cancel()
        exited.cancel()
    if probe.done() and not probe.cancelled() and probe.exception() is None:
        return
    if exited.done() and not exited.cancelled():
        reason = f"it exited with code {exited.result()}"
    else:
        reason = f"it did not answer HTTP within {timeout:g} s (`init_timeout`)"
    await process.kill()
    output = "\n".join(process.tail) if process.tail else "(nothing)"
    raise AppStartError(f"The app did not start: {reason}. Its last output:\n{output}")


@functools.cache
def _socket_folder() -> Path:
    """This server process's folder of app sockets: readable by it alone, and never mounted in a sandbox."""
    return Path(tempfile.mkdtemp(prefix="packyard-apps-"))


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


async def _spawn(spec: ProcessSpec, sandbox: Sandbox, quota: Quota) -> AppProcess:
    address = str(_socket_folder() / f"{secrets.token_hex(8)}.sock")
    harness = HARNESS_INSIDE if sandbox.enabled else str(HARNESS)
    mounts = [Mount(spec.cwd), *python_mounts(spec.python), Mount(HARNESS, HARNESS_INSIDE)]

    def command(fd: int) -> list[str]:
        argv = [str(spec.python), harness, "--kind", spec.kind, "--entrypoint", spec.entrypoint, "--fd", str(fd)]
        if spec.prefix:
            argv += ["--prefix", spec.prefix]
        return sandbox.command(argv, mounts=mounts, cwd=str(spec.cwd), quota=quota)

    try:
        popen, read_end = await asyncio.to_thread(
            _listen_and_start,
            address,
            command,
            cwd=spec.cwd,
            env=child_env(spec, sandbox),
            # Never written: the harness takes end of file as the server being gone, and exits.
            stdin=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C at the server's terminal reaches the server, which stops
            # the apps in order, and killing an app reaches whatever it spawned.
            start_new_session=True,
        )
    except OSError as exc:
        _unlink(address)
        raise AppStartError(
            f"The app did not start: could not run `{exc.filename or command(0)[0]}` in `{spec.cwd}` "
            f"({exc.strerror}). Rebuild the content's environment, then deploy again."
        ) from exc
    proc = Child.attach(popen, Output(read_end, asyncio.get_running_loop()))
    return AppProcess(spec, proc, address)


def _listen_and_start(
    address: str, command: Callable[[int], list[str]], **kwargs: Any
) -> tuple[subprocess.Popen[bytes], int]:
    """Listen on `address` and start the app with the listening socket; the socket is opened and closed in this
    one thread, so a cancelled start cannot close its descriptor while the spawn still passes it on."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        fd = sock.fileno()
        return _popen_piped(command(fd), pass_fds=(fd,), **kwargs)
    finally:
        sock.close()  # the child has its own copy


def _popen_piped(command: list[str], **kwargs: Any) -> tuple[subprocess.Popen[bytes], int]:
    """`subprocess.Popen` with stdout (and whatever `stderr=STDOUT` joins to it) on a pipe of our own, and that
    pipe's read end, for Output alone to close: never `stdout=PIPE` (see Output). Both ends are opened and the write
    end closed in this one call, so a caller cancelled while it runs in a thread cannot close a descriptor the
    spawn still uses."""
    read_end, write_end = os.pipe()
    try:
        return subprocess.Popen(command, stdout=write_end, **kwargs), read_end
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)  # the child has its own copy; end of file comes once it and its children have exited


def wake(waiters: deque[asyncio.Future[None]], count: int | None = None) -> None:
    """Wake `count` (default: all) waiting requests; each looks for room again."""
    while waiters and count != 0:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            count = None if count is None else count - 1


async def _probe(address: str) -> None:
    """Return once the app answers `GET /` on its socket with any HTTP response."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    while True:
        try:
            reader, writer = await asyncio.open_unix_connection(address)
        except OSError:
            await asyncio.sleep(POLL_INTERVAL)
            continue
        try:
            writer.write(request)
            if (await reader.read(5)).startswith(b"HTTP/"):
                return
        except OSError:
            pass
        finally:
            writer.close()
        await asyncio.sleep(POLL_INTERVAL)


def child_env(spec: ProcessSpec, sandbox: Sandbox) -> dict[str, str]:
    """The content's variables over the sandbox's minimal base."""
    return {**sandbox.environ(spec.python), **spec.env}


def _timestamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def append_log(path: Path, bundle_id: int, lines: list[str]) -> None:
    """Append lines to a content log as `<ISO time> [bundle <id>] <line>`, in one write."""
    prefix = f"{_timestamp()} [bundle {bundle_id}] "
    data = "".join(f"{prefix}{line}\n" for line in lines).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_log_tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a content log, reading backwards from its end (logs grow without bound)."""
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            data = b""
            position = end
            while position > 0 and data.count(b"\n") <= lines:
                step = min(65536, position)
                position -= step
                f.seek(position)
                data = f.read(step) + data
    except FileNotFoundError:
        return []
    return [line.decode("utf-8", "replace") for line in data.splitlines()[-lines:]]
