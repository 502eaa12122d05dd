"""Uploads: a concurrent legacy-API bulk loader (to fill a server fast) and the timed `twine upload` figure."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from corpus import VERSIONS, wheel_bytes
from util import CLIENT_CORE, WORK, clean_env, log, pinned, run, tool


@dataclass(frozen=True)
class UploadRate:
    files: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0


def form_fields(path: Path, data: bytes) -> dict[str, str]:
    """The fields twine sends for a wheel; the corpus filenames encode name and version."""
    dist, version = path.name.split("-")[:2]
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": dist.replace("_", "-"),
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    }


async def _upload_one(client: httpx.AsyncClient, url: str, path: Path) -> None:
    data = path.read_bytes()
    for attempt in range(5):
        try:
            response = await client.post(url, data=form_fields(path, data), files={"content": (path.name, data)})
        except httpx.TransportError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))
            continue
        if response.status_code < 300 or response.status_code == 409:  # 409: already there from an earlier run
            return
        if response.status_code < 500 or attempt == 4:
            raise RuntimeError(f"upload of {path.name} failed: {response.status_code} {response.text[:500]}")
        await asyncio.sleep(0.5 * (attempt + 1))


def by_project(files: list[Path]) -> list[list[Path]]:
    """One group per project: a worker uploads a project's files in order, the way a release pipeline does
    (and concurrent first uploads of one new project are a race that the loader should not provoke)."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(path.name.split("-")[0], []).append(path)
    return list(groups.values())


async def _bulk(url: str, auth: tuple[str, str], files: list[Path], concurrency: int) -> None:
    queue: asyncio.Queue[list[Path]] = asyncio.Queue()
    for group in by_project(files):
        queue.put_nowait(group)
    done = 0
    started = time.monotonic()

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while not queue.empty():
            for path in queue.get_nowait():
                await _upload_one(client, url, path)
                done += 1
                if done % 2500 == 0:
                    log(f"  uploaded {done}/{len(files)} ({done / (time.monotonic() - started):.0f} files/s)")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(auth=auth, timeout=120, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


def bulk_upload(url: str, auth: tuple[str, str], files: list[Path], concurrency: int = 4) -> UploadRate:
    """Fill a server over its upload API with several connections; not the reported twine figure."""
    started = time.monotonic()
    asyncio.run(_bulk(url, auth, files, concurrency))
    return UploadRate(len(files), time.monotonic() - started)


def twine_wheels(count: int, tag: str) -> list[Path]:
    """`count` fresh wheels (300 = 60 new projects x 5 versions) with names unique to this run, so a server
    kept from an earlier run (devpi's cached data) takes them as new uploads."""
    out = WORK / "twine" / tag
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        project, version = f"bench-up-{tag}-{i // len(VERSIONS):03d}", VERSIONS[i % len(VERSIONS)]
        filename, data = wheel_bytes(project, version)
        path = out / filename
        path.write_bytes(data)
        paths.append(path)
    return paths


def twine_upload(repository_url: str, user: str, password: str, files: list[Path]) -> UploadRate:
    """One `twine upload` of every file, timed from process start to exit, on the client core."""
    home = WORK / "home" / "twine"
    env = clean_env(home, TWINE_NON_INTERACTIVE="1")
    cmd = pinned(
        CLIENT_CORE,
        [
            tool("twine"),
            "upload",
            "--disable-progress-bar",
            "--non-interactive",
            "--repository-url",
            repository_url,
            "-u",
            user,
            "-p",
            password,
            *map(str, files),
        ],
    )
    started = time.monotonic()
    run(cmd, env=env, timeout=1800)
    return UploadRate(len(files), time.monotonic() - started)
