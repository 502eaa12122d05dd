"""Cold start to first byte for each app type: the FastAPI, Flask, Dash, Shiny, Streamlit and Bokeh test apps,
deployed once (their environments cached), then the server restarted and each content's page requested; the
first request starts the app. Run with `make bench-apps`; see bench/README.md."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from util import BENCH, HOST, ROOT, VENV_BIN, WORK, free_port, git_commit, log, wheelhouse

APPS = ROOT / "tests" / "apps"
# (label, app mode, test app, entry point as rsconnect writes it)
CONTENT = [
    ("FastAPI", "python-fastapi", "fastapi-app", "app"),
    ("Flask", "python-api", "flask-app", "app"),
    ("Dash", "python-dash", "dash-app", "app"),
    ("Shiny Express", "python-shiny", "shiny-app", "shiny.express.app:app_2e_py"),
    ("Streamlit", "python-streamlit", "streamlit-app", "app"),
    ("Bokeh", "python-bokeh", "bokeh-app", "app"),
]
DATA = WORK / "apps"


class Server:
    """A Packyard server on SQLite in its own folder under bench/.work/, restartable on the same port and data.
    Not pinned: on two cores, the server and an app on one core would weigh the front server's own cost per
    request (uvicorn's, ~90 us here) against the app's."""

    def __init__(self, data: Path = DATA, env: dict[str, str] | None = None) -> None:
        self.data = data
        self.env = env or {}
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        (data / "packyard.toml").write_text(
            f'[server]\naddress = "{self.url}"\nport = {self.port}\naccess_log = false\n\n'
            '[authentication]\napi_token_auth = true\n\n[upload]\nmax_file_size = "100MiB"\n'
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(VENV_BIN / "packyard"), "run", "--data-dir", str(self.data)],
            stdout=(self.data / "server.log").open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/__ping__").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"the server did not start; see {self.data / 'server.log'}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(60)

    def cli(self, *args: str) -> str:
        env = {**os.environ, "PACKYARD_DATA_DIR": str(self.data)}
        command = [str(VENV_BIN / "packyard"), *args]
        return subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout.strip()

    def load(self, folder: Path) -> str:
        """Upload the wheels in `folder` to `local-python-src` and create an admin; its API key."""
        token = self.cli("token", "create", "-q", "--description", "bench", "--scope", "sources:write",
                         "--sources", "local-python-src")  # fmt: skip
        self.cli("add", "--source", "local-python-src", "--path", str(folder), "--address", self.url, "--token", token)
        self.cli("user", "create", "bench", "--role", "admin")
        return self.cli("key", "create", "--user", "bench", "-q")


def wheels() -> Path:
    return wheelhouse("api", "apps")


def bundle(mode: str, app: str, entrypoint: str) -> bytes:
    manifest = {
        "version": 1,
        "metadata": {"appmode": mode, "entrypoint": entrypoint},
        "python": {
            "version": ".".join(map(str, sys.version_info[:3])),
            "package_manager": {"name": "pip", "version": "24", "package_file": "requirements.txt"},
        },
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        members = {"manifest.json": json.dumps(manifest).encode()}
        members |= {path.name: path.read_bytes() for path in (APPS / app).iterdir() if path.is_file()}
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def deploy(http: httpx.Client, name: str, data: bytes) -> str:
    guid = http.post("/__api__/v1/content", json={"name": name}).raise_for_status().json()["guid"]
    bundle_id = http.post(f"/__api__/v1/content/{guid}/bundles", content=data).raise_for_status().json()["id"]
    task = http.post(f"/__api__/v1/content/{guid}/deploy", json={"bundle_id": bundle_id}).json()["task_id"]
    first = 0
    while True:
        state = http.get(f"/__api__/v1/tasks/{task}", params={"first": first, "wait": 10}).json()
        first = state["last"]
        if state["finished"]:
            if state["code"]:
                raise RuntimeError(f"{name}: {state['error']}")
            return guid


def first_byte(http: httpx.Client, guid: str) -> float:
    """Seconds from sending `GET /content/<guid>/` to its status line and headers."""
    began = time.monotonic()
    with http.stream("GET", f"/content/{guid}/") as response:
        seconds = time.monotonic() - began
        response.read()
    if response.status_code >= 500:
        raise RuntimeError(f"content {guid} answered {response.status_code}: {response.text[:500]}")
    return seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5, help="server restarts, each followed by one cold start per app")
    parser.add_argument("--out", type=Path, default=BENCH / "apps-results.md")
    args = parser.parse_args(argv)
    folder = wheels()
    server = Server()
    cold: dict[str, list[float]] = {label: [] for label, *_ in CONTENT}
    warm: dict[str, list[float]] = {label: [] for label, *_ in CONTENT}
    try:
        key = server.load(folder)
        headers = {"Authorization": f"Key {key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=300) as http:
            guids = {}
            for label, mode, app, entrypoint in CONTENT:
                log(f"deploying {label}")
                guids[label] = deploy(http, app, bundle(mode, app, entrypoint))
        for rep in range(args.reps):
            server.stop()
            server.start()
            order = CONTENT[rep % len(CONTENT) :] + CONTENT[: rep % len(CONTENT)]  # spread the machine's drift
            log(f"rep {rep + 1}: cold starts in the order {', '.join(label for label, *_ in order)}")
            with httpx.Client(base_url=server.url, headers=headers, timeout=300) as http:
                for label, *_ in order:
                    cold[label].append(first_byte(http, guids[label]))
                    warm[label].append(first_byte(http, guids[label]))
    finally:
        server.stop()

    def med(values: list[float], unit: str = "s", scale: float = 1.0) -> str:
        figures = [v * scale for v in values]
        return f"{statistics.median(figures):.2f} {unit} (min {min(figures):.2f}, max {max(figures):.2f})"

    report = [
        f"# Cold start to first byte per app type ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()})",
        "",
        f"Command: `make bench-apps BENCH_ARGS='--reps {args.reps}'`. Each test app in `tests/apps/` deployed once"
        " from this Packyard's own `pypi` repository on 127.0.0.1 (pins in `tests/wheelhouse/api.txt` and"
        " `apps.txt`), then the server restarted before each rep, so the first `GET /content/<guid>/` starts the"
        f" app (its environment cached). Median of {args.reps}; the second request shows the same page served warm.",
        "",
        "| app | cold start to first byte | warm, next request |",
        "|---|---|---|",
        *[f"| {label} | {med(cold[label])} | {med(warm[label], 'ms', 1000)} |" for label, *_ in CONTENT],
    ]
    args.out.write_text("\n".join(report) + "\n")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
