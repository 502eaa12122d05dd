"""An app that shows what reaches it, as an untrusted app would see it: the headers of each request and websocket
handshake. `/set-cookie` and every handshake also try to set Packyard's cookies in the browser, beside one of the
app's own. Plain ASGI: it needs no framework, only uvicorn's websocket support."""

import json

# Packyard's session cookie, its login form's cookie, and the session cookie again as a nameless cookie (a
# browser sends `=packyard_session=evil` back as `packyard_session=evil`); then the app's own.
TAKEOVER = [
    (b"set-cookie", b"packyard_session=evil; Path=/"),
    (b"set-cookie", b"packyard_csrf=evil; Path=/"),
    (b"set-cookie", b"=packyard_session=evil; Path=/"),
]
OWN = (b"set-cookie", b"echo_own=kept; Path=/")


def seen(scope):
    headers = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return {"path": scope["path"], "headers": headers}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        extra = [*TAKEOVER, OWN] if scope["path"].endswith("/set-cookie") else []  # the path keeps root_path
        body = json.dumps(seen(scope)).encode()
        headers = [(b"content-type", b"application/json"), *extra]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept", "headers": [*TAKEOVER, OWN]})
        await send({"type": "websocket.send", "text": json.dumps(seen(scope))})
        await send({"type": "websocket.close", "code": 1000})
