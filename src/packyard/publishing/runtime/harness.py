"""Serve a deployed app on a listening Unix socket the Packyard server hands over.

    <python> harness.py --kind asgi|wsgi|dash|streamlit|bokeh --entrypoint ENTRY --fd N [--prefix /content/<guid>/]

ASGI apps (FastAPI, Shiny), WSGI apps and Dash's Flask server run under uvicorn; a Bokeh app runs on Bokeh's
own Tornado server, and a Streamlit script under `streamlit run`. Run by the content's own Python (never
imported by the server), with the extracted bundle as the working directory, so it may only use the standard
library and what the content's environment holds. It keeps to syntax that Python 3.8 accepts, since a content
environment may be older than the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import os
import signal
import socket
import stat
import sys
import threading
import traceback
import warnings

# What this harness runs (the server's deploy/launchers.py maps app modes to these).
KINDS = ("asgi", "wsgi", "dash", "streamlit", "bokeh")
# The names Connect looks for when an entry point names only a module: objects first, then factories.
APP_NAMES = ("app", "application")
FACTORY_NAMES = ("create_app", "make_app")
# Longer than the proxy keeps an idle connection, so the proxy is always the side that closes it and never
# sends a request on a connection the app is closing.
KEEP_ALIVE = 75


class EntrypointError(Exception):
    """The entry point names nothing servable."""


def load(entrypoint: str) -> object:
    """The object ENTRY names: `module` (Connect's default names) or `module:object` (object may be dotted)."""
    module_name, _, attribute = entrypoint.partition(":")
    module = importlib.import_module(module_name)
    if attribute:
        obj: object = module
        for part in attribute.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise EntrypointError(
                    f"Entry point `{entrypoint}`: module `{module_name}` has no attribute `{attribute}`."
                ) from None
        return _call_if_factory(obj)
    for name in APP_NAMES:
        if hasattr(module, name):
            return getattr(module, name)
    for name in FACTORY_NAMES:
        factory = getattr(module, name, None)
        if callable(factory):
            return factory()
    names = ", ".join(f"`{n}`" for n in APP_NAMES + FACTORY_NAMES)
    raise EntrypointError(
        f"Entry point `{entrypoint}`: module `{module_name}` defines none of {names}; name the object in the "
        f"entry point, for example `{module_name}:api`."
    )


def _call_if_factory(obj: object) -> object:
    """`module:create_app` works too: a plain function that takes no arguments cannot be an ASGI or WSGI app."""
    if inspect.isfunction(obj):
        params = inspect.signature(obj).parameters.values()
        if not any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            return obj()
    return obj


def asgi3(app: object) -> object:
    """Wrap an ASGI 2 app the way uvicorn's `interface="auto"` would."""
    import asyncio

    if inspect.isclass(app):
        is_asgi3 = hasattr(app, "__await__")
    elif inspect.isfunction(app):
        is_asgi3 = asyncio.iscoroutinefunction(app)
    else:
        is_asgi3 = callable(app) and asyncio.iscoroutinefunction(app.__call__)
    if is_asgi3:
        return app
    from uvicorn.middleware.asgi2 import ASGI2Middleware

    return ASGI2Middleware(app)  # type: ignore[arg-type]  # an ASGI 2 app, as the checks above found


def wsgi(app: object) -> object:
    try:
        from a2wsgi import WSGIMiddleware
    except ImportError:
        # uvicorn's own adapter warns that it is deprecated in favour of a2wsgi; the content chose its packages.
        from uvicorn.middleware.wsgi import WSGIMiddleware

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return WSGIMiddleware(app)  # type: ignore[arg-type]  # a WSGI app: the manifest says so
    return WSGIMiddleware(app)  # type: ignore[arg-type]


class ForwardedPrefix:
    """Mount the app under the prefix the proxy strips, as `uvicorn --root-path` does: root_path is the prefix
    and path (and raw_path) keep it, so FastAPI's docs and Flask's url_for link to /content/<guid>/...
    Only the proxy can reach this socket (the server bound it in a folder no content sees), so the header,
    like X-Forwarded-For, is trusted as it comes."""

    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] in ("http", "websocket"):
            for name, value in scope["headers"]:
                if name == b"x-forwarded-prefix":
                    prefix = value.decode("latin-1").rstrip("/")
                    if prefix:
                        scope = dict(scope)
                        scope["root_path"] = prefix
                        scope["path"] = prefix + scope["path"]
                        scope["raw_path"] = prefix.encode("latin-1") + scope.get("raw_path", b"")
                    break
        await self.app(scope, receive, send)  # type: ignore[operator]


class DocsAtRoot:
    """Connect's touch for FastAPI: an API with no route at `/` redirects `/` to its interactive docs, so the
    content URL opens on something useful instead of `{"detail": "Not Found"}`."""

    def __init__(self, app: object, api: object) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            root = scope.get("root_path", "")
            docs = getattr(self.api, "docs_url", None)
            # Routes are looked at per request: an app may add its `/` route after import.
            if scope["path"] in (root + "/", root or "/") and docs and not self._has_root():
                location = (root + docs).encode("latin-1")
                await send({"type": "http.response.start", "status": 307, "headers": [(b"location", location)]})  # type: ignore[operator]
                await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]
                return
        await self.app(scope, receive, send)  # type: ignore[operator]

    def _has_root(self) -> bool:
        return any(getattr(route, "path", None) in ("/", "") for route in getattr(self.api, "routes", ()))


def docs_at_root(app: object, loaded: object) -> object:
    """Wrap FastAPI apps (anything with `docs_url` and `routes`) in DocsAtRoot; others pass through."""
    if getattr(loaded, "docs_url", None) and hasattr(loaded, "routes"):
        return DocsAtRoot(app, loaded)
    return app


def exit_with_parent() -> None:
    """The server holds our stdin pipe and never writes to it; end of file means it is gone, so shut down
    instead of lingering as an orphan holding the port and the content's resources."""
    try:
        if not stat.S_ISFIFO(os.fstat(0).st_mode):
            return
    except OSError:
        return

    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), 15)  # SIGTERM: uvicorn finishes open requests and runs the shutdown lifespan

    threading.Thread(target=watch, name="packyard-parent-watch", daemon=True).start()


def script_path(entrypoint: str, kind: str) -> str:
    """The file (or, for Bokeh, directory) an entry point names: rsconnect writes `app` for `app.py`."""
    name = entrypoint.partition(":")[0]
    candidates = [name, name + ".py", name.replace(".", os.sep) + ".py"]
    if kind == "bokeh" and name == "main" and os.path.isfile("main.py"):
        candidates.insert(0, ".")  # a directory-style Bokeh app: main.py with its static/ and templates/
    for candidate in candidates:
        if os.path.isfile(candidate) or (kind == "bokeh" and os.path.isdir(candidate)):
            return candidate
    raise EntrypointError(
        f"Entry point `{entrypoint}`: the bundle has no file `{candidates[-2]}`; deploy the folder that holds "
        f"it, or name it with `--entrypoint`."
    )


def missing(package: str) -> int:
    print(
        f"{package} is not installed in the content's environment ({sys.prefix}); add `{package}` to "
        "requirements.txt and deploy again.",
        file=sys.stderr,
    )
    return 1


def run_uvicorn(args: argparse.Namespace) -> int:
    """ASGI and WSGI apps, and Dash's Flask server, under uvicorn on the passed socket."""
    try:
        import uvicorn
    except ImportError:
        return missing("uvicorn")
    if args.kind == "dash":
        # Read by Dash() when the app module builds it: the browser asks for everything under the prefix, while
        # Flask's routes stay at / because the proxy strips the prefix.
        os.environ["DASH_REQUESTS_PATHNAME_PREFIX"] = args.prefix
        os.environ["DASH_ROUTES_PATHNAME_PREFIX"] = "/"
    try:
        app = load(args.entrypoint)
    except EntrypointError as exc:
        print(exc, file=sys.stderr)
        return 1
    except BaseException:  # the app's own import error, shown as Python prints it
        traceback.print_exc()
        return 1
    if args.kind == "dash":
        app = wsgi(getattr(app, "server", app))  # a Dash object serves through its Flask app
    elif args.kind == "wsgi":
        app = wsgi(app)
    else:
        app = docs_at_root(asgi3(app), app)
    exit_with_parent()
    uvicorn.run(
        ForwardedPrefix(app),
        fd=args.fd,
        interface="asgi3",
        proxy_headers=True,
        forwarded_allow_ips="*",
        log_level="info",
        lifespan="auto" if args.kind == "asgi" else "off",
        # Every access line would cost a pipe write here and a log write in the server, per request.
        access_log=False,
        # The front server adds Date; two would reach the client.
        server_header=False,
        date_header=False,
        timeout_keep_alive=KEEP_ALIVE,
    )
    return 0


def run_streamlit(args: argparse.Namespace) -> int:
    """`streamlit run` on the passed socket. Its page finds its base path from the browser's URL, so it runs at /
    behind the prefix-stripping proxy; the proxy refuses cross-origin websockets before Streamlit sees them."""
    try:
        from streamlit.web import cli as streamlit_cli
        from streamlit.web.server.starlette import starlette_server
    except ImportError:
        return missing("streamlit")
    if not hasattr(starlette_server, "_bind_server_socket"):
        print(
            "This Streamlit version serves only on a port it binds itself, which Packyard's proxy cannot reach; "
            "require a newer one (Packyard is tested with `streamlit==1.67.0`) in requirements.txt and deploy again.",
            file=sys.stderr,
        )
        return 1
    try:
        script = script_path(args.entrypoint, "streamlit")
    except EntrypointError as exc:
        print(exc, file=sys.stderr)
        return 1
    sock = socket.socket(fileno=args.fd)

    def bind_server_socket(*_args: object, **_kwargs: object) -> tuple[socket.socket, str]:
        return sock, "127.0.0.1"  # the address only labels Streamlit's own log line

    starlette_server._bind_server_socket = bind_server_socket
    options = {
        "server.port": "8501",  # never bound: the socket above is served instead
        "server.address": "127.0.0.1",
        "server.headless": "true",
        "server.baseUrlPath": "",  # a bundle's .streamlit/config.toml must not move it off /
        "server.fileWatcherType": "none",  # bundles never change in place
        "server.runOnSave": "false",
        "browser.gatherUsageStats": "false",
    }
    exit_with_parent()
    sys.argv = ["streamlit", "run", script] + [item for key, value in options.items() for item in (f"--{key}", value)]
    return streamlit_cli.main(prog_name="streamlit")


def run_bokeh(args: argparse.Namespace) -> int:
    """A Bokeh app on Bokeh's Tornado server, on the passed socket. Its routes, page and websocket URL carry the
    prefix, so the proxy forwards full paths; any websocket origin is allowed because the proxy checks it."""
    try:
        from bokeh.command.util import build_single_handler_application
        from bokeh.server.server import BaseServer
        from bokeh.server.tornado import BokehTornado
        from tornado.httpserver import HTTPServer
        from tornado.ioloop import IOLoop
    except ImportError:
        return missing("bokeh")
    try:
        application = build_single_handler_application(script_path(args.entrypoint, "bokeh"))
    except EntrypointError as exc:
        print(exc, file=sys.stderr)
        return 1
    except BaseException:  # the app's own error (Bokeh runs the script per session, but checks it now)
        traceback.print_exc()
        return 1
    sock = socket.socket(fileno=args.fd)
    sock.setblocking(False)

    async def serve() -> None:
        # "*" directly: Bokeh's own helper logs a warning about it at every start.
        tornado_app = BokehTornado({"/": application}, prefix=args.prefix.rstrip("/"), extra_websocket_origins=["*"])
        http_server = HTTPServer(tornado_app, xheaders=True)
        http_server.add_sockets([sock])
        server = BaseServer(IOLoop.current(), tornado_app, http_server)
        server.start()
        print(f"Bokeh app at {args.prefix or '/'} ready.", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop(wait=False)
        await http_server.close_all_connections()

    exit_with_parent()
    asyncio.run(serve())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a Packyard content app on a socket passed by the server.")
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--entrypoint", required=True)
    parser.add_argument("--fd", type=int, required=True, help="a listening socket to serve")
    parser.add_argument("--prefix", default="", help="the URL prefix, for apps told it when they start")
    args = parser.parse_args(argv)

    # sys.path[0] is this script's directory, which holds Packyard's own modules (models.py, errors.py...);
    # the bundle takes its place so they can never shadow the app's.
    sys.path[0] = os.getcwd()
    runners = {"streamlit": run_streamlit, "bokeh": run_bokeh}
    return runners.get(args.kind, run_uvicorn)(args)


if __name__ == "__main__":
    sys.exit(main())
