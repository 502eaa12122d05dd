"""Publishing benchmark: cold deploy, cached-environment redeploy and rollback of the FastAPI test app, and,
for the same requirements from the same index, `python -m venv` + `pip install` and `uv venv` + `uv pip
install`, measured in one run. Run with `make bench-deploy`; see bench/README.md."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
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

APP = ROOT / "tests" / "apps" / "fastapi-app"
PINS = ["fastapi==0.165.0", "uvicorn==0.54.0"]
DATA = WORK / "deploy"


def sh(*args: str, env: dict[str, str] | None = None) -> float:
    began = time.monotonic()
    subprocess.run(args, check=True, capture_output=True, env=env)
    return time.monotonic() - began


class Bench:
    def __init__(self) -> None:
        shutil.rmtree(DATA, ignore_errors=True)
        DATA.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        (DATA / "packyard.toml").write_text(
            f'[server]\naddress = "{self.url}"\nport = {self.port}\naccess_log = false\n\n'
            "[authentication]\napi_token_auth = true\n"
        )
        self.server = subprocess.Popen(
            [str(VENV_BIN / "packyard"), "run", "--data-dir", str(DATA)],
            stdout=(DATA / "server.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        for _ in range(300):
            try:
                if httpx.get(f"{self.url}/__ping__").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        self.index = f"{self.url}/pypi/latest/simple/"
        wheels = wheelhouse("api")
        token = self.cli("token", "create", "-q", "--description", "bench", "--scope", "sources:write",
                         "--sources", "local-python-src")  # fmt: skip
        self.cli("add", "--source", "local-python-src", "--path", str(wheels), "--address", self.url, "--token", token)
        self.cli("user", "create", "bench", "--role", "admin")
        self.key = self.cli("key", "create", "--user", "bench", "-q")
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Key {self.key}"}, timeout=300)

    def cli(self, *args: str) -> str:
        env = {**os.environ, "PACKYARD_DATA_DIR": str(DATA)}
        result = subprocess.run(
            [str(VENV_BIN / "packyard"), *args], capture_output=True, text=True, check=True, env=env
        )
        return result.stdout.strip()

    def close(self) -> None:
        self.server.terminate()
        self.server.wait(30)

    # -- what the API does --------------------------------------------------------------------------------

    def content(self, name: str) -> str:
        return self.http.post("/__api__/v1/content", json={"name": name}).raise_for_status().json()["guid"]

    def upload(self, guid: str, version: int) -> str:
        buffer = io.BytesIO()
        files = {
            "app.py": (APP / "app.py").read_text().replace("VERSION = 1", f"VERSION = {version}").encode(),
            "requirements.txt": (APP / "requirements.txt").read_bytes(),
        }
        manifest = {
            "version": 1,
            "metadata": {"appmode": "python-fastapi", "entrypoint": "app"},
            "python": {
                "version": ".".join(map(str, sys.version_info[:3])),
                "package_manager": {"name": "pip", "version": "24", "package_file": "requirements.txt"},
            },
        }
        files["manifest.json"] = json.dumps(manifest).encode()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        response = self.http.post(f"/__api__/v1/content/{guid}/bundles", content=buffer.getvalue())
        return response.raise_for_status().json()["id"]

    def deploy(self, guid: str, bundle: str) -> list[str]:
        task = self.http.post(f"/__api__/v1/content/{guid}/deploy", json={"bundle_id": bundle}).json()["task_id"]
        lines: list[str] = []
        first = 0
        while True:
            state = self.http.get(f"/__api__/v1/tasks/{task}", params={"first": first, "wait": 10}).json()
            lines += state["output"]
            first = state["last"]
            if state["finished"]:
                if state["code"]:
                    raise RuntimeError("\n".join(lines))
                return lines

    def serves(self, guid: str, version: int, deadline: float = 60) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            response = self.http.get(f"/content/{guid}/")
            if response.status_code == 200 and response.json().get("version") == version:
                return
            time.sleep(0.005)
        raise RuntimeError(f"content {guid} did not serve version {version}")

    def clear_environments(self) -> None:
        self.http.request("DELETE", "/__api__/v1/system/caches/runtime", json={"language": "Python"})


def environment_seconds(lines: list[str]) -> float:
    for line in lines:
        found = re.search(r"Environment (?:built|ready) in ([0-9.]+) s", line)
        if found:
            return float(found.group(1))
    raise RuntimeError("no environment timing in the deploy log:\n" + "\n".join(lines))


def settle() -> None:
    """Flush the deletions before a timed build: their writeback would otherwise slow whichever build follows."""
    os.sync()
    time.sleep(0.5)


class Baselines:
    """The same requirements, from the same index, the way Connect did before uv and with bare uv."""

    def __init__(self, index: str) -> None:
        self.index = index
        self.work = WORK / "deploy-baselines"
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.req = str(APP / "requirements.txt")
        self.uv = str(VENV_BIN / "uv")

    def venv_pip(self) -> float:
        env, cache = self.work / "env", self.work / "pip-cache"
        shutil.rmtree(env, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
        settle()
        began = time.monotonic()
        sh(sys.executable, "-m", "venv", str(env))
        sh(str(env / "bin/python"), "-m", "pip", "install", "-q", "--cache-dir", str(cache),
           "--index-url", self.index, "-r", self.req)  # fmt: skip
        return time.monotonic() - began

    def uv_install(self, cold: bool) -> float:
        env, cache = self.work / "env", self.work / ("uv-cache-cold" if cold else "uv-cache-warm")
        if cold:
            shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(env, ignore_errors=True)
        settle()
        began = time.monotonic()
        sh(self.uv, "venv", "-q", "--python", sys.executable, str(env))
        sh(self.uv, "pip", "install", "-q", "--python", str(env / "bin/python"), "--cache-dir", str(cache),
           "--index-url", self.index, "-r", self.req)  # fmt: skip
        return time.monotonic() - began


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each measurement (median reported)")
    parser.add_argument("--out", type=Path, default=BENCH / "deploy-results.md")
    args = parser.parse_args(argv)
    bench = Bench()
    try:
        base = Baselines(bench.index)
        base.uv_install(cold=False)  # fills the warm cache
        uv_cache = DATA / "cache" / "uv"
        times: dict[str, list[float]] = {}

        def note(what: str, seconds: float) -> None:
            times.setdefault(what, []).append(seconds)

        guid = bench.content("warm-up")
        bench.deploy(guid, bench.upload(guid, 1))  # fills Packyard's uv cache
        for rep in range(args.reps):
            # Interleaved, so drift in this noisy machine's speed hits both sides of each comparison alike.
            log(f"rep {rep + 1}: bare uv and Packyard builds, uv cache cold")
            note("uv cold", base.uv_install(cold=True))
            bench.clear_environments()
            shutil.rmtree(uv_cache, ignore_errors=True)
            guid = bench.content(f"cold-{rep}")
            bundle = bench.upload(guid, 1)
            settle()
            began = time.monotonic()
            lines = bench.deploy(guid, bundle)
            bench.serves(guid, 1)
            note("cold deploy", time.monotonic() - began)
            note("packyard cold", environment_seconds(lines))
            log(f"rep {rep + 1}: bare uv and Packyard builds, uv cache warm")
            note("uv warm", base.uv_install(cold=False))
            bench.clear_environments()
            guid = bench.content(f"warm-{rep}")
            bundle = bench.upload(guid, 1)
            settle()
            note("packyard warm", environment_seconds(bench.deploy(guid, bundle)))
            log(f"rep {rep + 1}: venv + pip")
            note("venv+pip", base.venv_pip())
            log(f"rep {rep + 1}: cached-environment redeploy and rollback")
            first = bench.upload(guid, 100 + rep)
            bench.deploy(guid, first)
            second = bench.upload(guid, 200 + rep)
            uploaded = time.monotonic()  # the upload has finished: the clock of the 2 s target starts here
            bench.deploy(guid, second)
            bench.serves(guid, 200 + rep)
            note("redeploy", time.monotonic() - uploaded)
            began = time.monotonic()
            bench.deploy(guid, first)
            bench.serves(guid, 100 + rep)
            note("rollback", time.monotonic() - began)
    finally:
        bench.close()

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"

    rows = [
        ("`python -m venv` + `pip install` (fresh pip cache)", med(times["venv+pip"])),
        ("bare `uv venv` + `uv pip install`, cold uv cache", med(times["uv cold"])),
        ("bare `uv venv` + `uv pip install`, warm uv cache", med(times["uv warm"])),
        ("Packyard environment build, cold uv cache", med(times["packyard cold"])),
        ("Packyard environment build, warm uv cache", med(times["packyard warm"])),
        ("Packyard cold deploy (deploy call to first answer), cold uv cache", med(times["cold deploy"])),
        ("Packyard cached-environment redeploy (upload finished to new code served)", med(times["redeploy"])),
        ("Packyard rollback (deploy call to old code served)", med(times["rollback"])),
    ]
    ratio_cold = statistics.median(times["packyard cold"]) / statistics.median(times["uv cold"])
    ratio_warm = statistics.median(times["packyard warm"]) / statistics.median(times["uv warm"])
    report = [
        f"# Publishing benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()})",
        "",
        f"Command: `make bench-deploy BENCH_ARGS='--reps {args.reps}'`. The FastAPI test app (`tests/apps/fastapi-app`:"
        f" {', '.join(PINS)}, 14 packages installed) from this Packyard's own `pypi` repository on 127.0.0.1;"
        f" median of {args.reps}.",
        "",
        "| what | time |",
        "|---|---|",
        *[f"| {what} | {value} |" for what, value in rows],
        "",
        f"Environment build / bare uv: {ratio_cold:.2f}x with a cold uv cache, {ratio_warm:.2f}x with a warm one"
        " (target: within 1.1x).",
    ]
    args.out.write_text("\n".join(report) + "\n")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
