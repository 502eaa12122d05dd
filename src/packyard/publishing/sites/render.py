"""Rendering at deploy time: a notebook through nbconvert, a Quarto document or project through `quarto render`.

A render runs in a copy of the bundle inside a staging folder beside it (the notebook may write files, and
Quarto writes its output next to its sources), with the content's variables set. Only a complete output is
renamed into place as `site-<bundle id>/`, so a failed render never replaces what is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packyard.publishing.bundles.manifest import Manifest
from packyard.publishing.errors import BundleError, RenderError
from packyard.publishing.sandbox import Mount, Quota, Sandbox, python_mounts

# What the content's environment needs beside its requirements to be rendered. Quarto's list is its own
# minimal requirement for the Jupyter engine (quarto.org, "Jupyter Markdown"); it applies only when the
# Quarto bundle has a `python` section.
RUNTIME_PACKAGES: dict[str, list[str]] = {
    "jupyter-static": ["nbconvert", "ipykernel"],
    "quarto-static": ["jupyter-core", "nbformat", "nbclient", "ipykernel", "pyyaml"],
}
# Connect's tag for `--hide-tagged-input`; rsconnect's own `--static` render removes the same tag.
HIDE_INPUT_TAG = "hide_input"
SITE = "site"  # the served folder inside `site-<id>/`
SITE_INFO = "site.json"  # beside it: the index document and how the output was made
QUARTO_DOCUMENTS = (".qmd", ".ipynb", ".md", ".rmd")
# Output folders of Quarto project types whose `output-dir` is unset; other types render in place.
QUARTO_OUTPUT_DIRS = {"website": "_site", "book": "_book", "manuscript": "_manuscript"}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)|Exception)(: .*)?$")


@dataclass(frozen=True)
class Rendered:
    root: Path  # the folder to serve
    index: str | None  # the document served at the content's root, if not index.html


@dataclass(frozen=True)
class RenderJob:
    """What a render needs: the bundle, where its output goes, the Python and variables it runs with."""

    manifest: Manifest
    bundle: Path  # the extracted bundle, never written to
    dest: Path  # `site-<id>/`, created by the render
    python: Path | None  # the content environment's python; None for Quarto without Python
    variables: dict[str, str]
    timeout: float
    sandbox: Sandbox
    quota: Quota
    quarto: str = ""  # `[quarto] executable`


def load_rendered(dest: Path) -> Rendered | None:
    """The output an earlier render left at `dest`, if it finished."""
    try:
        info = json.loads((dest / SITE_INFO).read_text())
    except (OSError, ValueError):
        return None
    index = info.get("index") if isinstance(info, dict) else None
    return Rendered(dest / SITE, index if isinstance(index, str) else None)


async def render(job: RenderJob, say: Callable[[str], None]) -> Rendered:
    """Render the bundle into `job.dest` (complete or absent); RenderError says why it could not."""
    job.dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{job.dest.name}.", suffix=".partial", dir=job.dest.parent))
    began = time.monotonic()
    try:
        work = staging / "work"
        await asyncio.to_thread(shutil.copytree, job.bundle, work)
        job.sandbox.check()
        await asyncio.to_thread(job.sandbox.give, staging)  # the render writes here, and nowhere else
        index: str | None
        if job.manifest.appmode == "jupyter-static":
            output, index = await _notebook(job, work, staging, say)
        elif job.manifest.appmode == "quarto-static":
            output, index = await _quarto(job, work, say)
        else:
            raise ValueError(f"nothing renders app mode {job.manifest.appmode!r}")
        seconds = time.monotonic() - began
        await asyncio.to_thread(_commit, staging, output, {"index": index, "seconds": round(seconds, 3)}, job.dest)
        return Rendered(job.dest / SITE, index)
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)


def _commit(staging: Path, output: Path, info: dict[str, Any], dest: Path) -> None:
    os.rename(output, staging / SITE)
    (staging / SITE_INFO).write_text(json.dumps(info))
    shutil.rmtree(staging / "work", ignore_errors=True)
    try:
        os.rename(staging, dest)
    except OSError:
        if load_rendered(dest) is None:  # not a finished render of the same bundle that got there first
            raise


# -- notebooks ----------------------------------------------------------------------------------------------


async def _notebook(job: RenderJob, work: Path, staging: Path, say: Callable[[str], None]) -> tuple[Path, str]:
    manifest = job.manifest
    name = manifest.entrypoint
    if not name or not name.endswith(".ipynb"):
        raise BundleError(
            f"manifest.json: `metadata.entrypoint` is {json.dumps(name)}; a notebook bundle names its notebook, "
            "e.g. `analysis.ipynb` (`rsconnect deploy notebook` writes it)."
        )
    notebook = work / name
    if not _inside(notebook, work) or not notebook.is_file():
        raise BundleError(
            f"The bundle has no notebook `{name}` (manifest.json `metadata.entrypoint`); add it to the bundle."
        )
    assert job.python is not None
    output = staging / "output"
    index = Path(name).with_suffix(".html").name
    command = [
        str(job.python),
        "-m",
        "nbconvert",
        "--to=html",
        "--execute",
        # The kernel of the environment nbconvert runs in, whatever kernel the notebook was saved with.
        "--ExecutePreprocessor.kernel_name=python3",
        f"--output-dir={output}",
        f"--output={Path(index).stem}",
    ]
    if manifest.hide_all_input:
        command.append("--no-input")
    elif manifest.hide_tagged_input:
        command.append(f"--TagRemovePreprocessor.remove_input_tags={HIDE_INPUT_TAG}")
    command.append(str(notebook))
    jupyter = staging / "jupyter"  # the server's own Jupyter configuration and kernels stay out of it
    jupyter.mkdir()
    env = {
        **_base_env(job),
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "JUPYTER_DATA_DIR": str(jupyter / "data"),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "IPYTHONDIR": str(jupyter / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
        **job.variables,
    }
    options = [c for c in command[3:-1] if not c.startswith("--output")]
    say(f"Running the notebook `{name}` with nbconvert ({' '.join(options)}) ...")
    began = time.monotonic()
    shown = _CellErrors(say)
    try:
        status, tail = await _run(job, command, work, env, shown)
    finally:
        shown.flush()
    if status != 0:
        raised = next((line for line in reversed(tail) if _EXCEPTION.match(line.strip())), None)
        if raised is not None:
            raise RenderError(
                f"The notebook `{name}` failed: a cell raised `{raised.strip()}`; the output above shows the "
                "cell and its traceback, so fix it and deploy again."
            )
        last = next((line.strip() for line in reversed(tail) if line.strip()), "no output")
        raise RenderError(f"nbconvert exited with code {status} rendering `{name}`: {last}")
    if not (output / index).is_file():
        raise RenderError(f"nbconvert finished but wrote no `{index}`; the output above may say why.")
    say(f"Notebook executed and rendered to `{index}` in {time.monotonic() - began:.2f} s.")
    return output, index


class _CellErrors:
    """Drops the frames of nbconvert's own traceback before a `CellExecutionError`: they say nothing about the
    notebook, and the cell with its own traceback follows them."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.held: list[str] | None = None

    def __call__(self, line: str) -> None:
        if self.held is not None:
            if line.startswith("nbclient.exceptions.CellExecutionError"):
                self.held = None
                self.say(line.removeprefix("nbclient.exceptions."))
                return
            if line.startswith(" "):
                self.held.append(line)
                return
            self.flush()
        if line.startswith("Traceback (most recent call last)"):
            self.held = [line]
        else:
            self.say(line)

    def flush(self) -> None:
        for line in self.held or []:
            self.say(line)
        self.held = None


# -- Quarto ---------------------------------------------------------------------------------------------------


def find_quarto(configured: str, python: Path | None) -> tuple[Path, str]:
    """The `quarto` binary and where it came from: the setting, then PATH, then the content's `quarto-cli`."""
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise RenderError(
                f"`[quarto] executable` is `{configured}`, which is not an executable file; set it to the "
                "`bin/quarto` of a Quarto installation, or leave it empty to use `quarto` on PATH."
            )
        return Path(found), "`[quarto] executable`"
    found = shutil.which("quarto")
    if found is not None:
        return Path(found), "the server's PATH"
    if python is not None and (python.parent / "quarto").is_file():
        return python.parent / "quarto", "the content's quarto-cli package"
    raise RenderError(
        "This Quarto content needs the `quarto` binary, which this server does not have: `[quarto] executable` "
        "is not set, there is no `quarto` on the server's PATH, and the content's environment has no quarto-cli "
        "(its PyPI release is a source package that downloads Quarto from GitHub while it builds); install "
        "Quarto on the server (https://quarto.org/docs/get-started/) and set `[quarto] executable` to its "
        "`bin/quarto`, or add it to the server's PATH."
    )


async def _quarto(job: RenderJob, work: Path, say: Callable[[str], None]) -> tuple[Path, str | None]:
    quarto, source = find_quarto(job.quarto, job.python)
    env = {**_base_env(job), **job.variables}
    if job.python is not None:
        env["QUARTO_PYTHON"] = str(job.python)
    project = (work / "_quarto.yml").is_file() or (work / "_quarto.yaml").is_file()
    say(f"Quarto: {quarto} (from {source}).")
    if project:
        output_dir = await _project_output_dir(job, quarto, work, env)
        command = [str(quarto), "render"]
        index = None
    else:
        document = _document(job.manifest, work)
        command = [str(quarto), "render", document]
        output_dir = "."
        index = str(Path(document).with_suffix(".html"))
    say(f"Running `{shlex.join(['quarto', *command[1:]])}` ...")
    began = time.monotonic()
    status, tail = await _run(job, command, work, env, say)
    if status != 0:
        last = next((line.strip() for line in reversed(tail) if line.strip()), "no output")
        raise RenderError(f"`quarto render` exited with code {status}: {last}; the output above may say more.")
    output = (work / output_dir).resolve()
    if not _inside(output, work.resolve()) or not output.is_dir():
        raise RenderError(
            f"`quarto render` finished but wrote no `{output_dir}` folder (the project's output-dir); "
            "the output above may say why."
        )
    if index is not None and not (output / index).is_file():
        raise RenderError(f"`quarto render` finished but wrote no `{index}`; render it to HTML (`format: html`).")
    say(f"Quarto rendered the {'project' if project else 'document'} in {time.monotonic() - began:.2f} s.")
    return output, index


async def _project_output_dir(job: RenderJob, quarto: Path, work: Path, env: dict[str, str]) -> str:
    """Where the project renders to, as `quarto inspect` reports it (the project's own `output-dir`)."""
    lines: list[str] = []
    status, _ = await _run(job, [str(quarto), "inspect"], work, env, lines.append, keep=10_000)
    try:
        inspected = json.loads("\n".join(lines)) if status == 0 else None
    except ValueError:
        inspected = None
    if not isinstance(inspected, dict):
        last = next((line.strip() for line in reversed(lines) if line.strip()), "no output")
        raise RenderError(f"`quarto inspect` could not read the project (exit code {status}): {last}")
    project = (inspected.get("config") or {}).get("project") or {}
    output_dir = project.get("output-dir")
    if isinstance(output_dir, str) and output_dir:
        return output_dir
    return QUARTO_OUTPUT_DIRS.get(str(project.get("type")), ".")


def _document(manifest: Manifest, work: Path) -> str:
    """The one document of a bundle without `_quarto.yml`: the entrypoint, else the only `.qmd` (or notebook)."""
    if manifest.entrypoint:
        if not _inside(work / manifest.entrypoint, work) or not (work / manifest.entrypoint).is_file():
            raise BundleError(f"The bundle has no `{manifest.entrypoint}` (manifest.json `metadata.entrypoint`).")
        return manifest.entrypoint
    found = sorted(p.name for p in work.iterdir() if p.is_file() and p.suffix.lower() in QUARTO_DOCUMENTS)
    by_kind = (
        [name for name in found if name.endswith(".qmd")],
        [name for name in found if name.lower().endswith((".ipynb", ".rmd"))],
        [name for name in found if name.endswith(".md") and not name.lower().startswith("readme")],
    )
    candidates = next((names for names in by_kind if names), [])
    if len(candidates) != 1:
        listed = ", ".join(f"`{name}`" for name in candidates) or "none"
        raise BundleError(
            f"The Quarto bundle has no `_quarto.yml` and {len(candidates)} documents at its root ({listed}); "
            "deploy one document (`rsconnect deploy quarto doc.qmd`) or a project folder with `_quarto.yml`."
        )
    return candidates[0]


# -- running a renderer -------------------------------------------------------------------------------------


def _base_env(job: RenderJob) -> dict[str, str]:
    """A minimal environment, like an app process's: the server's own variables hold secrets."""
    return {**job.sandbox.environ(job.python), "NO_COLOR": "1"}


async def _run(
    job: RenderJob,
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    say: Callable[[str], None],
    keep: int = 80,
) -> tuple[int, list[str]]:
    """Run a renderer in the content's sandbox, passing each output line (colour codes removed) to `say`; its exit
    status and last lines. The sandbox sees the render's staging folder (writable), the environment and Quarto.

    Popen (vfork) rather than the event loop's subprocess support, as for uv (environments/uv.py). Its own session, so
    a timeout stops the kernel or whatever else it started too."""
    staging = cwd.parent
    mounts = [Mount(staging, writable=True)]
    if job.python is not None:
        mounts += python_mounts(job.python)
    tool = Path(command[0])
    if job.python is None or not tool.is_relative_to(job.python.parent.parent):
        mounts.append(Mount(tool.resolve().parent.parent))  # Quarto's installation: bin/quarto and its share/
    sandboxed = job.sandbox.command(command, mounts=mounts, cwd=str(cwd), quota=job.quota)
    try:
        process = await asyncio.to_thread(
            subprocess.Popen,
            sandboxed,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise RenderError(
            f"Could not run `{command[0]}`: {exc.strerror}; check that it exists and is executable."
        ) from exc
    tail: deque[str] = deque(maxlen=keep)

    def pump() -> int:
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                text = _ANSI.sub("", line.decode(errors="replace")).rstrip()
                tail.append(text)
                say(text)
        return process.wait()

    try:
        return await asyncio.wait_for(asyncio.to_thread(pump), job.timeout), list(tail)
    except TimeoutError:
        raise RenderError(
            f"`{tool.name} {command[1] if len(command) > 1 else ''}` did not finish within {job.timeout:g} s "
            "and was stopped; make it faster or raise `[publishing] render_timeout`."
        ) from None
    finally:
        if process.poll() is None:  # timed out, or the deploy was abandoned
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait)


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())
