"""Running uv for environment builds: its environment, its output streamed line by line, its timings."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import subprocess
from collections import deque
from collections.abc import Callable

from uv import find_uv_bin

# Variables that would change what uv installs without changing the environment's key.
_DROPPED = (
    "UV_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_CONSTRAINT",
    "UV_OVERRIDE",
    "UV_BUILD_CONSTRAINT",
    "UV_EXCLUDE_NEWER",
    "UV_PRERELEASE",
    "UV_RESOLUTION",
    "UV_NO_BINARY",
    "UV_ONLY_BINARY",
    "UV_NO_BUILD",
    "UV_TORCH_BACKEND",
    "UV_PYTHON",
    "UV_SYSTEM_PYTHON",
    "UV_BREAK_SYSTEM_PACKAGES",
    "UV_CACHE_DIR",
    "UV_NO_CACHE",
    "UV_CONFIG_FILE",
    "UV_PROJECT_ENVIRONMENT",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "PYTHONPATH",
    "PYTHONHOME",
)
# Where index credentials and TLS roots may be configured; proxies (`*_PROXY`) pass too.
_PASSED = ("NETRC", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
# What uv says when `--no-build` met a package that has to be built from source.
NEEDS_BUILD = ("building from source is disabled", "Building source distributions is disabled")
_TIMING = re.compile(r"^(Resolved|Prepared|Installed) \d+ packages? in (.+)$")
_PART = re.compile(r"([\d.]+)(ms|µs|us|m|s)\b")
_UNIT = {"ms": 0.001, "µs": 1e-6, "us": 1e-6, "m": 60.0, "s": 1.0}


def uv_bin() -> str:
    return find_uv_bin()


@functools.cache
def uv_version() -> str:
    """`uv 0.13.9`: part of every environment key, since another uv may install differently."""
    result = subprocess.run([uv_bin(), "--version"], capture_output=True, text=True, timeout=60)
    return " ".join(result.stdout.split()[:2]) or "uv unknown"


def uv_environ() -> dict[str, str]:
    """The server's environment for a uv it runs itself, less what would change an environment's contents."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED)}
    env.update(NO_COLOR="1", UV_NO_PROGRESS="1", UV_PYTHON_DOWNLOADS="never")
    return env


def build_environ(base: dict[str, str]) -> dict[str, str]:
    """For a uv that builds a content environment in a sandbox: `base` plus uv's own settings, proxies and
    certificates from the server's environment, and nothing else of it (build backends run in there)."""
    env = dict(base)
    for name, value in os.environ.items():
        upper = name.upper()
        if (name.startswith("UV_") and not name.startswith(_DROPPED)) or upper.endswith("_PROXY") or upper in _PASSED:
            env[name] = value
    env.update(NO_COLOR="1", UV_NO_PROGRESS="1", UV_PYTHON_DOWNLOADS="never")
    return env


async def run_streaming(
    command: list[str], log: Callable[[str], None], cwd: str, env: dict[str, str] | None = None
) -> tuple[int, list[str]]:
    """Run uv, passing each output line to `log` as it arrives; the exit status and the last 60 lines.

    `subprocess.Popen` rather than the event loop's subprocess support: uvloop forks, which copies the page
    tables of the whole server (tens of milliseconds per uv run for a server holding big page caches), while
    Popen uses vfork. `log` is called from a worker thread."""
    process = await asyncio.to_thread(
        subprocess.Popen,
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=uv_environ() if env is None else env,
        cwd=cwd,
    )
    tail: deque[str] = deque(maxlen=60)

    def pump() -> int:
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                text = line.decode(errors="replace").rstrip()
                tail.append(text)
                log(text)
        return process.wait()

    try:
        status = await asyncio.to_thread(pump)
        return status, list(tail)
    finally:
        if process.poll() is None:  # cancelled: the deploy was abandoned, so is the install
            process.kill()
            await asyncio.to_thread(process.wait)


def timings(lines: list[str]) -> dict[str, float]:
    """uv's own "Resolved 3 packages in 1.2s" lines, as seconds by phase."""
    found: dict[str, float] = {}
    for line in lines:
        match = _TIMING.match(line.strip())
        if match:
            phase = {"Resolved": "resolve", "Prepared": "prepare", "Installed": "install"}[match.group(1)]
            found[phase] = round(sum(float(n) * _UNIT[u] for n, u in _PART.findall(match.group(2))), 6)
    return found


def error_lines(lines: list[str]) -> list[str]:
    """The part of uv's output that says what went wrong: from its last `error:` (or `×`) line on."""
    start = max(
        (i for i, line in enumerate(lines) if line.lstrip().startswith(("error:", "×"))),
        default=max(len(lines) - 5, 0),
    )
    found = [line for line in lines[start:][:20] if line.strip()]
    if found:
        found[0] = found[0].strip().removeprefix("error:").removeprefix("×").strip()
    return found
