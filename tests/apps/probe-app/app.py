"""A hostile app: each route tries one way out of its sandbox and says what happened (test_hostile_content.py)."""

import os
import socket
import subprocess
import sys

import fastapi
from fastapi import FastAPI

app = FastAPI(title="Packyard probe")

# Forks until the kernel refuses, says how many it got and how it was refused, then takes them all down.
FORK_BOMB = """
import os, signal, time
kids = []
try:
    while len(kids) < 20000:
        pid = os.fork()
        if pid == 0:
            time.sleep(120)
            os._exit(0)
        kids.append(pid)
    print(len(kids), "none")
except OSError as exc:
    print(len(kids), type(exc).__name__)
for kid in kids:
    os.kill(kid, signal.SIGKILL)
for kid in kids:
    os.waitpid(kid, 0)
"""


def attempt(action):
    try:
        return {"ok": True, "value": action()}
    except BaseException as exc:  # the probe reports whatever stopped it
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


@app.get("/identity")
def identity() -> dict:
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    return {"uid": os.getuid(), "home": os.environ.get("HOME"), "environ": dict(os.environ), "pids": pids}


@app.get("/read")
def read(path: str) -> dict:
    return attempt(lambda: open(path, "rb").read(200).decode("latin-1"))


@app.get("/list")
def listing(path: str) -> dict:
    return attempt(lambda: sorted(os.listdir(path)))


@app.get("/write")
def write(path: str) -> dict:
    def append() -> str:
        with open(path, "a") as f:
            f.write("pwned\n")
        return path

    return attempt(append)


@app.get("/environs")
def environs() -> dict:
    """Every /proc/<pid>/environ this process can read."""
    found = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            found[pid] = attempt(lambda pid=pid: open(f"/proc/{pid}/environ", "rb").read().decode("latin-1"))
    return found


@app.get("/connect")
def connect(address: str) -> dict:
    def dial() -> str:
        if address.startswith("/"):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(address)
        else:
            host, port = address.rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=2).close()
        return address

    return attempt(dial)


@app.get("/site-packages")
def site_packages() -> dict:
    return attempt(lambda: open(fastapi.__file__, "a").write("# pwned\n"))


@app.get("/fork-bomb")
def fork_bomb() -> dict:
    result = subprocess.run([sys.executable, "-c", FORK_BOMB], capture_output=True, text=True, timeout=300)
    return {"stdout": result.stdout.strip(), "stderr": result.stderr[-400:]}


@app.get("/hog")
def hog(gib: int = 6) -> dict:
    return attempt(lambda: len(bytearray(gib * 1024**3)))
