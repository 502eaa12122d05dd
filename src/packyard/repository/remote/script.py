#!/usr/bin/env python3
"""`rspm`, the remote CLI: upload wheels, sdists and R source packages to a Packyard server as `packyard add` does,
from any machine with Python 3.9 or newer and nothing else installed.

    curl -fLOJH "Authorization: Bearer $PACKYARD_TOKEN" "$PACKYARD_ADDRESS/__api__/download"
    chmod +x rspm
    ./rspm add --source=local-python-src --path=/path/to/packages

The server serves this file at `/__api__/download` with its own version stamped in (`remote/download.py`). It
runs where Packyard is not installed, so it imports the standard library only and keeps Python 3.9's syntax
(ruff checks it as py39: `per-file-target-version` in pyproject.toml). For each file it asks
`/__api__/sources/<source>/files/<name>` whether the same bytes are stored (then it skips the file), and otherwise
posts the legacy upload form to `/upload/pypi/<source>` as twine does, with the archive's own metadata; an R
source package (`name_version.tar.gz`, as `R CMD build` names it) goes alone to `/upload/r/<source>`, which checks it.
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from pathlib import Path
from typing import BinaryIO, NoReturn

VERSION = "unstamped"  # `/__api__/download` writes the server's version here
DIST_SUFFIXES = (".whl", ".tar.gz")
# `R CMD build`'s names (`<package>_<version>.tar.gz`); an sdist is `<name>-<version>.tar.gz`.
R_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]_[0-9]+(?:[.-][0-9]+)+\.tar\.gz")
TIMEOUT = 120  # seconds per socket operation: a large file's answer comes after the server has stored it
ADDRESS_VARIABLES = ("PACKYARD_ADDRESS", "PACKAGEMANAGER_ADDRESS")
TOKEN_VARIABLES = ("PACKYARD_TOKEN", "PACKAGEMANAGER_TOKEN")


def _colored(text: str, code: str) -> str:
    plain = os.environ.get("NO_COLOR") or os.name == "nt" or not sys.stderr.isatty()
    return text if plain else f"\033[{code}m{text}\033[0m"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fail(message: str, hint: str | None = None, cause: str | None = None) -> NoReturn:
    """uv's shape, as `packyard` prints it: `error:`, then `Caused by:` and a `hint:` with the next step."""
    say(f"{_colored('error', '1;31')}: {message}")
    if cause:
        say(f"  {_colored('Caused by', '31')}: {cause}")
    if hint:
        say(f"\n{_colored('hint', '1;36')}: {hint}")
    sys.exit(1)


def human_size(size: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def collect(paths: list[str]) -> list[Path]:
    """The wheels and sdists to upload: each file given, and those directly inside each folder given."""
    files: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(DIST_SUFFIXES))
            if not found:
                fail(f"No wheels or sdists in `{given}`.", hint="Build them with `uv build`.")
            files.extend(found)
        elif path.is_file():
            if not path.name.endswith(DIST_SUFFIXES):
                fail(f"`{given}` is not a wheel or sdist.", hint="Pass `.whl` or `.tar.gz` files, or a folder of them.")
            files.append(path)
        else:
            fail(f"`{given}` does not exist.", hint="Pass `--path` a wheel, an sdist or a folder of them.")
    return files


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def core_metadata(path: Path) -> bytes:
    """A wheel's `*.dist-info/METADATA` or an sdist's `<name>-<version>/PKG-INFO`, as the server reads them."""
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            found = sorted(n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
            if not found:
                raise ValueError("it has no `<name>-<version>.dist-info/METADATA`")
            return archive.read(found[0])
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            if member.name.count("/") == 1 and member.name.endswith("/PKG-INFO") and member.isfile():
                handle = archive.extractfile(member)
                if handle is not None:
                    return handle.read()
    raise ValueError("it has no `<name>-<version>/PKG-INFO`")


def form_fields(path: Path, digest: str) -> dict[str, str]:
    """The legacy upload form, from the archive's own metadata, as twine sends it."""
    try:
        raw = core_metadata(path)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, tarfile.TarError) as exc:
        fail(f"Cannot read `{path}`.", cause=str(exc) or type(exc).__name__, hint="Rebuild it with `uv build`.")
    meta = email.parser.BytesHeaderParser().parsebytes(raw)
    if not meta.get("Name") or not meta.get("Version"):
        fail(f"Cannot read `{path}`.", cause="its metadata has no Name or Version", hint="Rebuild it with `uv build`.")
    wheel = path.name.endswith(".whl")
    if wheel:
        # name-version(-build)?-python-abi-platform.whl; the python tag may be compressed (`py2.py3`).
        python_tag = path.name[: -len(".whl")].split("-")[-3]
        pyversion = ".".join(sorted(set(python_tag.split("."))))
    else:
        pyversion = "source"
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": str(meta.get("Metadata-Version") or "2.1"),
        "name": str(meta["Name"]),
        "version": str(meta["Version"]),
        "filetype": "bdist_wheel" if wheel else "sdist",
        "pyversion": pyversion,
        "requires_python": str(meta.get("Requires-Python") or ""),
        "sha256_digest": digest,
    }


class ProgressBar:
    """One line redrawn with `\\r` on a terminal: name, bar, bytes sent, speed. Silent when stderr is not one."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total, self.done = name, total, 0
        self.started = self.drawn = time.monotonic()
        self.live = sys.stderr.isatty()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.live and (now - self.drawn >= 0.1 or self.done >= self.total):
            self.drawn = now
            self.draw(now)

    def draw(self, now: float) -> None:
        width = shutil.get_terminal_size((80, 20)).columns
        speed = self.done / max(now - self.started, 1e-6)
        figures = f" {human_size(self.done)}/{human_size(self.total)}  {human_size(speed)}/s"
        cells = max(10, min(40, width - len(self.name) - len(figures) - 4))
        filled = cells * self.done // max(self.total, 1)
        line = f"{self.name} [{'#' * filled}{'-' * (cells - filled)}]{figures}"
        sys.stderr.write("\r" + line[: width - 1])
        sys.stderr.flush()

    def clear(self) -> None:
        if self.live:
            width = shutil.get_terminal_size((80, 20)).columns
            sys.stderr.write("\r" + " " * (width - 1) + "\r")
            sys.stderr.flush()


class MultipartBody:
    """A `multipart/form-data` body read in blocks (urllib sends anything with `read`), so a large file streams
    from disk and each block advances the progress bar."""

    def __init__(self, fields: dict[str, str], files: list[tuple[str, Path, str]], progress: ProgressBar) -> None:
        self.boundary = uuid.uuid4().hex
        self.progress = progress
        self.parts: list[bytes | Path] = []
        for name, value in fields.items():
            self.parts.append(self._head(f'name="{name}"', None) + value.encode() + b"\r\n")
        for field, path, media_type in files:
            self.parts += [self._head(f'name="{field}"; filename="{path.name}"', media_type), path, b"\r\n"]
        self.parts.append(f"--{self.boundary}--\r\n".encode())
        self.length = sum(p.stat().st_size if isinstance(p, Path) else len(p) for p in self.parts)
        self._handle: BinaryIO | None = None

    def _head(self, disposition: str, media_type: str | None) -> bytes:
        head = f"--{self.boundary}\r\nContent-Disposition: form-data; {disposition}\r\n"
        if media_type:
            head += f"Content-Type: {media_type}\r\n"
        return (head + "\r\n").encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def read(self, size: int = -1) -> bytes:
        size = size if size > 0 else 1 << 20
        while self.parts:
            part = self.parts[0]
            if isinstance(part, bytes):
                self.parts.pop(0)
                return part
            if self._handle is None:
                self._handle = part.open("rb")
            data = self._handle.read(size)
            if data:
                self.progress.advance(len(data))
                return data
            self._handle.close()
            self._handle = None
            self.parts.pop(0)
        return b""

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as it is: urllib would turn an upload's POST into a GET without its body."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Server:
    def __init__(self, address: str, token: str) -> None:
        self.base = address.rstrip("/")
        credentials = base64.b64encode(f"__token__:{token}".encode()).decode()
        self.headers = {"Authorization": f"Basic {credentials}", "User-Agent": f"rspm/{VERSION} (Packyard)"}
        self.opener = urllib.request.build_opener(_NoRedirects)

    def send(self, method: str, path: str, body: MultipartBody | None = None) -> tuple[int, str, str]:
        """The status, body text and `Location` of the answer; raises OSError (URLError) when there is none."""
        headers = dict(self.headers)
        if body is not None:
            headers.update({"Content-Type": body.content_type, "Content-Length": str(body.length)})
        request = urllib.request.Request(self.base + path, data=body, headers=headers, method=method)
        try:
            with self.opener.open(request, timeout=TIMEOUT) as response:
                return response.status, response.read().decode("utf-8", "replace"), ""
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, exc.read().decode("utf-8", "replace"), exc.headers.get("Location", "")
            finally:
                exc.close()


def unreachable(server: Server, exc: OSError) -> NoReturn:
    reason = getattr(exc, "reason", None) or exc
    fail(
        f"Cannot reach the server at {server.base}.",
        cause=str(reason),
        hint="Check `PACKYARD_ADDRESS` (or `PACKAGEMANAGER_ADDRESS`, or `--address`) and that the server is running.",
    )


def refused(server: Server, source: str, status: int, text: str, location: str) -> NoReturn:
    """The server will not take files into this source at all: every file would fail the same way."""
    cause = text.strip() or f"HTTP {status}"
    if location:
        hint = f"The server redirects to `{location}`; set `PACKYARD_ADDRESS` to the address it redirects to."
    elif status == 401:
        hint = (
            "Set `PACKYARD_TOKEN` (or `PACKAGEMANAGER_TOKEN`, or pass `--token`) to a valid token; an administrator "
            f"creates one with `packyard token create --description rspm --scope sources:write --sources {source}`."
        )
    elif status == 404:
        hint = "Pass `--source` one of the sources named above, or ask an administrator to create this one."
    else:
        hint = None
    fail(f"Cannot upload to source `{source}` at {server.base} ({status}).", cause=cause, hint=hint)


def add(source: str, paths: list[str], address: str | None, token: str | None) -> None:
    address = address or next((os.environ[v] for v in ADDRESS_VARIABLES if os.environ.get(v)), None)
    token = token or next((os.environ[v] for v in TOKEN_VARIABLES if os.environ.get(v)), None)
    set_address = (
        "Set `PACKYARD_ADDRESS=https://packyard.example.com` (or `PACKAGEMANAGER_ADDRESS`) or pass `--address`."
    )
    if not address:
        fail("No server address.", hint=set_address)
    if not address.startswith(("http://", "https://")):
        fail(f"The server address `{address}` is not an http:// or https:// URL.", hint=set_address)
    if not token:
        fail(
            "No API token.",
            hint="Set `PACKYARD_TOKEN` (or `PACKAGEMANAGER_TOKEN`, or pass `--token`); an administrator creates one "
            f"with `packyard token create --description rspm --scope sources:write --sources {source}`.",
        )
    files = collect(paths)
    server = Server(address, token)
    quoted_source = urllib.parse.quote(source, safe="")
    uploaded = skipped = 0
    failures: list[str] = []
    for path in files:
        digest = sha256(path)
        r_package = R_PACKAGE.fullmatch(path.name) is not None
        fields = {} if r_package else form_fields(path, digest)
        try:
            status, text, location = server.send(
                "GET", f"/__api__/sources/{quoted_source}/files/{urllib.parse.quote(path.name)}"
            )
        except OSError as exc:
            unreachable(server, exc)
        if status == 200:
            try:
                stored = json.loads(text).get("sha256")
            except (ValueError, AttributeError):
                stored = None
            if stored == digest:
                skipped += 1
                say(f"Skipped {path.name} (already in `{source}`)")
                continue
        if status in (401, 403) or (status == 404 and "Source" in text) or location:
            refused(server, source, status, text, location)
        signature = path.with_name(path.name + ".asc")
        attached = [("content", path, "application/octet-stream")]
        if signature.is_file():
            attached.append(("gpg_signature", signature, "application/pgp-signature"))
        progress = ProgressBar(path.name, sum(p.stat().st_size for _, p, _ in attached))
        body = MultipartBody(fields, attached, progress)
        try:
            kind = "r" if r_package else "pypi"
            status, text, location = server.send("POST", f"/upload/{kind}/{quoted_source}", body)
        except OSError as exc:
            progress.clear()
            unreachable(server, exc)
        finally:
            body.close()
        progress.clear()
        if status == 200:
            uploaded += 1
            say(f"Uploaded {path.name} ({human_size(progress.total)})")
            for line in text.splitlines():
                if line.startswith("warning:"):  # e.g. the upload now hides a mirror's upstream versions
                    say(line)
        else:
            message = " ".join(text.split()) or f"HTTP {status}" + (f", redirected to {location}" if location else "")
            failures.append(f"{path.name}: {status} {message}")
            say(f"Failed {path.name}: {message}")
    print(f"{uploaded} uploaded, {skipped} skipped, {len(failures)} failed", flush=True)
    if failures:
        fail(
            f"{len(failures)} of {len(files)} files were not uploaded to `{source}`.",
            hint="Fix what each line above says, then run the same command again; stored files are skipped.",
        )


def parser() -> argparse.ArgumentParser:
    prog = os.path.basename(sys.argv[0]) or "rspm"
    top = argparse.ArgumentParser(
        prog=prog,
        description=f"Packyard's remote CLI (server version {VERSION}): upload wheels and sdists to a source.",
        epilog=f"Example: {prog} add --source=local-python-src --path=dist/",
    )
    top.add_argument("--version", action="version", version=f"{prog} {VERSION} (Packyard)")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    command = commands.add_parser(
        "add",
        help="Upload distributions to a server, skipping files already there.",
        description="Upload distributions to a server, skipping files already there.",
    )
    command.add_argument("--source", required=True, help="Source to upload into, e.g. `local-python-src`.")
    command.add_argument("--path", action="append", required=True, help="A wheel, sdist or folder of them; repeatable.")
    command.add_argument("--address", help="Server address [env var: PACKYARD_ADDRESS or PACKAGEMANAGER_ADDRESS].")
    command.add_argument("--token", help="API token [env var: PACKYARD_TOKEN or PACKAGEMANAGER_TOKEN].")
    return top


def main(argv: list[str] | None = None) -> None:
    top = parser()
    args = top.parse_args(argv)
    if args.command is None:
        top.print_help(sys.stderr)
        sys.exit(2)
    try:
        add(args.source, args.path, args.address, args.token)
    except KeyboardInterrupt:
        say("")
        fail("Interrupted; files already uploaded stay, and running the same command again skips them.")


if __name__ == "__main__":
    main()
