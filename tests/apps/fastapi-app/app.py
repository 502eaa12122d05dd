"""The FastAPI app the publishing tests deploy with `rsconnect deploy fastapi`."""

import asyncio
import os
import uuid

from fastapi import FastAPI, Request

VERSION = 1
PROCESS = uuid.uuid4().hex  # one per process
app = FastAPI(title="Packyard test API")


@app.get("/")
def root() -> dict:
    return {"app": "fastapi", "version": VERSION}


@app.get("/greeting")
def greeting() -> dict:
    return {"greeting": os.environ.get("GREETING"), "secret_seen": os.environ.get("FLASK_ONLY")}


@app.get("/links")
def links(request: Request) -> dict:
    return {"self": str(request.url_for("links")), "root_path": request.scope.get("root_path")}


@app.post("/echo")
async def echo(request: Request) -> dict:
    body = await request.body()
    return {"size": len(body)}


@app.get("/slow")
async def slow(seconds: float = 1.0) -> dict:
    """Holds its connection for a while, so the scaling tests can fill a process."""
    await asyncio.sleep(seconds)
    # Its pid is its sandbox's (each app has a PID namespace of its own); the id tells processes apart.
    return {"pid": os.getpid(), "process": PROCESS}
