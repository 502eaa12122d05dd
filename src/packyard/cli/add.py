"""`packyard add`: upload wheels, sdists and R source packages to a server with a progress bar, skipping what is
there."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO, cast

import httpx
from packaging.utils import parse_wheel_filename
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from packyard.cli.output import err, fail, out
from packyard.errors import PackyardError
from packyard.repository.cran.archive import inspect_r_package
from packyard.repository.cran.description import FILENAME as R_FILENAME
from packyard.repository.upload.archive import inspect_sdist, inspect_wheel

DIST_SUFFIXES = (".whl", ".tar.gz")


def collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.name.endswith(DIST_SUFFIXES))
            if not found:
                fail(
                    f"No wheels, sdists or R source packages in `{path}`.",
                    hint="Build them first with `uv build` or `R CMD build`.",
                )
            files.extend(found)
        elif path.is_file():
            if not path.name.endswith(DIST_SUFFIXES):
                fail(
                    f"`{path}` is not a wheel, sdist or R source package.",
                    hint="Pass `.whl` or `.tar.gz` files, or a folder.",
                )
            files.append(path)
        else:
            fail(f"`{path}` does not exist.")
    return files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_r_package(path: Path) -> bool:
    """`name_version.tar.gz` is an R source package (`R CMD build` names them so); sdists are `name-version`."""
    return R_FILENAME.fullmatch(path.name) is not None


def r_form_fields(path: Path) -> dict[str, str]:
    """An R package's upload form is its file alone; checked here first so a bad one fails before the upload."""
    try:
        with path.open("rb") as file:
            inspect_r_package(file, path.name)
    except PackyardError as exc:
        fail(f"Cannot read `{path}`", cause=exc)
        raise
    return {"sha256_digest": _sha256(path)}


def form_fields(path: Path) -> dict[str, str]:
    """The legacy upload form, from the archive's own metadata, as twine sends it."""
    wheel = path.name.endswith(".whl")
    try:
        with path.open("rb") as file:
            meta = inspect_wheel(file, path.name) if wheel else inspect_sdist(file, path.name)
    except PackyardError as exc:
        fail(f"Cannot read `{path}`", cause=exc)
        raise
    pyversion = ".".join(sorted({t.interpreter for t in parse_wheel_filename(path.name)[3]})) if wheel else "source"
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": meta.metadata_version or "2.1",
        "name": meta.name,
        "version": str(meta.version),
        "filetype": "bdist_wheel" if wheel else "sdist",
        "pyversion": pyversion,
        "requires_python": meta.requires_python or "",
        "sha256_digest": _sha256(path),
    }


class _Reader:
    """A file whose reads advance a progress bar."""

    def __init__(self, handle: BinaryIO, progress: Progress, task: int) -> None:
        self.handle, self.progress, self.task = handle, progress, task

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.progress.advance(self.task, len(data))  # type: ignore[arg-type]
        return data


def add_files(source: str, paths: list[Path], address: str | None, token: str | None) -> None:
    address = address or os.environ.get("PACKYARD_ADDRESS") or os.environ.get("PACKAGEMANAGER_ADDRESS")
    token = token or os.environ.get("PACKYARD_TOKEN") or os.environ.get("PACKAGEMANAGER_TOKEN")
    if not address:
        fail("No server address.", hint="Set `PACKYARD_ADDRESS=https://packyard.example.com` or pass `--address`.")
    if not token:
        fail(
            "No API token.",
            hint="Set `PACKYARD_TOKEN` (an administrator creates one with "
            f"`packyard token create --description 'packyard add' --scope sources:write --sources {source}`).",
        )
    assert address and token
    files = collect(paths)
    base = address.rstrip("/")
    uploaded = skipped = 0
    failures: list[str] = []
    with (
        httpx.Client(auth=("__token__", token), timeout=httpx.Timeout(30, write=None)) as client,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err,
            transient=True,
        ) as progress,
    ):
        for path in files:
            r_package = is_r_package(path)
            fields = r_form_fields(path) if r_package else form_fields(path)
            upload_url = f"{base}/upload/r/{source}" if r_package else f"{base}/upload/pypi/{source}"
            try:
                check = client.get(f"{base}/__api__/sources/{source}/files/{path.name}")
                if check.status_code == 200 and check.json().get("sha256") == fields["sha256_digest"]:
                    skipped += 1
                    err.print(f"Skipped {path.name} (already in `{source}`)")
                    continue
                if check.status_code in (401, 403) or (check.status_code == 404 and "Source" in check.text):
                    fail(f"Cannot upload to source `{source}` at {base}", cause=PackyardError(check.text.strip()))
                task = progress.add_task(path.name, total=path.stat().st_size)
                signature = path.with_name(path.name + ".asc")
                with path.open("rb") as handle:
                    reader = cast(BinaryIO, _Reader(handle, progress, task))  # httpx needs only its read()
                    multipart: dict[str, tuple[str, BinaryIO | bytes, str]] = {
                        "content": (path.name, reader, "application/octet-stream")
                    }
                    if signature.exists():
                        multipart["gpg_signature"] = (
                            signature.name,
                            signature.read_bytes(),
                            "application/pgp-signature",
                        )
                    response = client.post(upload_url, data={} if r_package else fields, files=multipart)
                progress.remove_task(task)
            except httpx.HTTPError as exc:
                fail(
                    f"Failed to upload `{path.name}` to {base}",
                    cause=exc,
                    hint="Check `PACKYARD_ADDRESS` and that the server is running.",
                )
            if response.status_code == 200:
                uploaded += 1
                err.print(f"Uploaded {path.name}")
                for line in response.text.splitlines():
                    if line.startswith("warning:"):  # e.g. the upload now hides a mirror's upstream versions
                        err.print(f"[yellow]{escape(line)}[/]", soft_wrap=True)
            else:
                failures.append(f"{path.name}: {response.status_code} {response.text.strip()}")
                err.print(f"[red]Failed[/] {path.name}: {response.text.strip()}", soft_wrap=True)
    out.print(f"{uploaded} uploaded, {skipped} skipped, {len(failures)} failed")
    if failures:
        fail(
            f"{len(failures)} of {len(files)} files were not uploaded to `{source}`",
            hint="Fix what each line above says, then run the same command again; stored files are skipped.",
        )
