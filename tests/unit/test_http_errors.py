"""SurfaceRoute and SurfaceNotFound in a FastAPI app of their own: a surface renders the errors of its routes and
of its unmatched paths, 405 included, and the app's handlers answer for everything else."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request

from packyard.errors import PackyardError
from packyard.http_errors import SurfaceNotFound, SurfaceRoute, as_packyard_error, install


def render(request: Request, exc: Exception) -> JSONResponse:
    error, status = as_packyard_error(request, exc)
    return JSONResponse({"surface": error.message}, status)


class Surface(SurfaceRoute):
    render_error = staticmethod(render)


def app() -> FastAPI:
    inner = APIRouter(prefix="/s", route_class=Surface)

    @inner.get("/refused")
    async def refused() -> None:
        raise PackyardError("No.")

    @inner.get("/missing")
    async def missing() -> None:
        raise HTTPException(404)

    @inner.get("/number/{n}")
    async def number(n: int) -> int:
        return n

    @inner.get("/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    outer = APIRouter(route_class=Surface)
    outer.include_router(inner)  # an included router's routes keep their class
    plain = APIRouter()

    @plain.get("/plain")
    async def plain_route() -> None:
        raise PackyardError("Plain no.")

    api = FastAPI()
    api.include_router(outer)
    api.include_router(plain)
    api.router.routes.append(SurfaceNotFound(render, prefixes=("/s/",), paths=("/s",)))
    install(api)
    return api


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/s/refused", 400, {"surface": "No."}),
        (
            "GET",
            "/s/missing",
            404,
            {"surface": "Nothing is served at `/s/missing`; repository indexes live at `/<repo>/latest/simple/`."},
        ),
        (
            "GET",
            "/s/number/x",
            400,
            {"surface": "Bad request: Input should be a valid integer, unable to parse string as an integer."},
        ),
        ("POST", "/s/refused", 405, {"surface": "Method POST is not allowed on `/s/refused`."}),
        (
            "GET",
            "/s/nothing",
            404,
            {"surface": "Nothing is served at `/s/nothing`; repository indexes live at `/<repo>/latest/simple/`."},
        ),
        (
            "GET",
            "/s",
            404,
            {"surface": "Nothing is served at `/s`; repository indexes live at `/<repo>/latest/simple/`."},
        ),
    ],
)
def test_a_surface_renders_its_routes_and_paths(method: str, path: str, status: int, body: dict) -> None:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app()), base_url="http://test") as client:
            return await client.request(method, path)

    response = asyncio.run(call())
    assert (response.status_code, response.json()) == (status, body)


def test_other_paths_get_the_apps_handlers_and_bugs_stay_500() -> None:
    async def calls() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            json = {"accept": "application/json"}
            return [
                await client.get("/plain"),
                await client.get("/elsewhere", headers=json),
                await client.get("/s/broken"),
            ]

    plain, elsewhere, broken = asyncio.run(calls())
    assert (plain.status_code, plain.text, plain.headers["content-type"]) == (
        400,
        "Plain no.\n",
        "text/plain; charset=utf-8",
    )
    assert elsewhere.headers["content-type"] == "application/problem+json"
    assert elsewhere.json()["detail"].startswith("Nothing is served at `/elsewhere`")
    assert broken.status_code == 500 and "surface" not in broken.text
