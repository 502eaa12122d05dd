"""`packyard mirror prefetch`: warm a mirror's cache through a running server, for an offline day."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated
from urllib.parse import urljoin

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from packyard.cli.output import err, fail, out

mirror_app = typer.Typer(no_args_is_help=True, help="The PyPI mirror's cache.")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


def _uv() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def _pins(requirements: Path, index: str) -> dict[str, set[str]]:
    """Resolve for every platform through the server itself, which fetches the pages and metadata it needs."""
    command = [_uv(), "pip", "compile", "--universal", "--no-header", "--no-annotate", "--quiet", "--no-config"]
    command += ["--index-url", index, str(requirements)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        fail(
            f"Could not resolve {requirements} through {index}",
            hint=" ".join(result.stderr.replace(index, "<index>").strip().splitlines()[-3:]) or None,
        )
    pins: dict[str, set[str]] = {}
    for line in result.stdout.splitlines():
        line = line.split(";", 1)[0].strip()
        if "==" in line and not line.startswith(("#", "-")):
            name, version = line.split("==", 1)
            pins.setdefault(name.split("[", 1)[0].strip(), set()).add(version.strip())
    return pins


@mirror_app.command("prefetch")
def prefetch(
    names: Annotated[list[str] | None, typer.Argument(help="Requirements, e.g. `pandas` or 'numpy<2'.")] = None,
    requirement: Annotated[
        list[Path] | None, typer.Option("-r", "--requirement", help="A requirements file; repeatable.")
    ] = None,
    repo: Annotated[str, typer.Option(help="Repository whose mirror to warm.")] = "pypi",
    address: Annotated[
        str | None,
        typer.Option(envvar="PACKYARD_ADDRESS", show_default="http://127.0.0.1:4242", help="Server address."),
    ] = None,
    token: Annotated[str | None, typer.Option(help="API token for an authenticated repository.")] = None,
) -> None:
    """Fetch the requirements and everything they need, for every platform, into the cache."""
    address = (address or os.environ.get("PACKYARD_ADDRESS") or "http://127.0.0.1:4242").rstrip("/")
    token = token or os.environ.get("PACKYARD_TOKEN")
    if not names and not requirement:
        fail("Nothing to prefetch.", hint="Pass requirements, e.g. `packyard mirror prefetch pandas`, or `-r FILE`.")
    lines = list(names or [])
    for path in requirement or []:
        if not path.is_file():
            fail(f"`{path}` does not exist.")
        lines.append(path.read_text())
    index = f"{address}/{repo}/latest/simple/"
    if token:
        scheme, rest = index.split("://", 1)
        index = f"{scheme}://__token__:{token}@{rest}"
    with tempfile.TemporaryDirectory() as tmp:
        combined = Path(tmp) / "requirements.in"
        combined.write_text("\n".join(lines) + "\n")
        err.print("Resolving ...")
        pins = _pins(combined, index)
    auth = httpx.BasicAuth("__token__", token) if token else None
    with httpx.Client(auth=auth, timeout=httpx.Timeout(60, connect=10)) as client:
        wanted: list[tuple[str, str]] = []
        for name, versions in sorted(pins.items()):
            page_url = f"{address}/{repo}/latest/simple/{name}/"
            response = client.get(page_url, headers={"accept": JSON_TYPE})
            if response.status_code != 200:
                fail(f"{page_url} answered {response.status_code}: {response.text.strip()}")
            for f in response.json()["files"]:
                if _version_of(f["filename"]) in versions:
                    wanted.append((f["filename"], urljoin(page_url, f["url"])))
        fetched = 0
        failures: list[str] = []
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=err, transient=False) as progress:
            task = progress.add_task(f"Prefetching {len(wanted)} files", total=len(wanted))
            for filename, url in wanted:
                try:
                    with client.stream("GET", url) as response:
                        for _ in response.iter_bytes(1 << 20):
                            pass
                    if response.status_code == 200:
                        fetched += 1
                    else:
                        failures.append(f"{filename}: {response.status_code}")
                except httpx.HTTPError as exc:
                    failures.append(f"{filename}: {exc}")
                progress.advance(task)
    out.print(f"{len(pins)} projects, {fetched} files cached, {len(failures)} failed")
    if failures:
        for line in failures:
            err.print(f"  {line}", soft_wrap=True)
        fail(
            f"{len(failures)} files could not be fetched", hint="Run the same command again once the upstream answers."
        )


def _version_of(filename: str) -> str | None:
    from packaging.utils import parse_sdist_filename, parse_wheel_filename

    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except ValueError:
        return None
