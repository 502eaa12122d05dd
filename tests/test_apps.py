"""Dash, Shiny, Streamlit and Bokeh apps deployed with the real rsconnect and used through the proxy.

Each websocket session speaks what the framework's own page speaks, at the protocol level: Shiny's `init`
message, Bokeh's ACK and PULL-DOC exchange, Streamlit's `rerun_script` BackMsg.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.browser import new_page, sign_in, web_user
from tests.publishing import Publishing, copy_app, publishing_server, setup_publishing


@pytest.fixture(scope="module")
def pub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Publishing]:
    # pyarrow's wheel (Streamlit's) is 53 MB.
    limit = {"PACKYARD_UPLOAD_MAX_FILE_SIZE": "100MiB"}
    with publishing_server("sqlite", tmp_path_factory.mktemp("packyard-apps"), limit) as server:
        yield setup_publishing(server, tmp_path_factory.mktemp("publisher-home"), wheels="apps")


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("apps")


def deployed(pub: Publishing, kind: str, name: str, apps: Path) -> Deployed:
    app = copy_app(name, apps)
    result = pub.deploy(kind, app)
    output = result.stdout + result.stderr
    assert "Deployment completed successfully." in output, output
    return Deployed(pub, pub.record(app)["app_guid"], output)


class Deployed:
    def __init__(self, pub: Publishing, guid: str, output: str) -> None:
        self.pub = pub
        self.guid = guid
        self.output = output  # rsconnect's output, with both deploy tasks' logs
        self.prefix = f"/content/{guid}/"

    def get(self, path: str = "", **kwargs: Any) -> httpx.Response:
        return self.pub.get(self.prefix + path, **kwargs)

    @property
    def pid(self) -> int:
        """The process serving now, as the server lists it (the deploy's may have stopped once idle)."""
        jobs = self.pub.api("GET", f"/v1/content/{self.guid}/jobs").json()
        return max(jobs, key=lambda job: job["connections"])["pid"]

    def websocket(self, path: str, **kwargs: Any) -> connect:
        """A browser's websocket: this server's Origin, the publisher's key, no size limit."""
        url = self.pub.server.url.replace("http://", "ws://") + self.prefix + path
        headers = {"Authorization": f"Key {self.pub.key}", **kwargs.pop("headers", {})}
        kwargs.setdefault("origin", self.pub.server.url)
        return connect(url, additional_headers=headers, max_size=None, open_timeout=30, **kwargs)


@pytest.fixture(scope="module")
def dash_app(pub: Publishing, apps: Path) -> Deployed:
    return deployed(pub, "dash", "dash-app", apps)


@pytest.fixture(scope="module")
def shiny_app(pub: Publishing, apps: Path) -> Deployed:
    return deployed(pub, "shiny", "shiny-app", apps)


@pytest.fixture(scope="module")
def streamlit_app(pub: Publishing, apps: Path) -> Deployed:
    return deployed(pub, "streamlit", "streamlit-app", apps)


@pytest.fixture(scope="module")
def bokeh_app(pub: Publishing, apps: Path) -> Deployed:
    return deployed(pub, "bokeh", "bokeh-app", apps)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def until(ws: ClientConnection, found: Any) -> Any:
    """Messages from the app until `found(message)` is truthy; its value."""
    while True:
        value = found(await ws.recv())
        if value:
            return value


def test_dash_answers_a_callback_under_the_prefix(dash_app: Deployed) -> None:
    # Dash learns its prefix when it starts, so activating its draft started a fresh process for /content/<guid>/.
    assert f"starts again for {dash_app.prefix}" in dash_app.output
    page = dash_app.get()
    assert page.status_code == 200
    config = json.loads(re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', page.text)[1])
    assert config["requests_pathname_prefix"] == dash_app.prefix
    script = re.search(r'<script src="([^"]+_dash-component-suites/[^"]+\.js[^"]*)"', page.text)[1]
    assert script.startswith(dash_app.prefix)
    asset = dash_app.pub.get(script)
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    layout = dash_app.get("_dash-layout").json()
    assert "greeting" in json.dumps(layout)
    update = {
        "output": "greeting.children",
        "outputs": {"id": "greeting", "property": "children"},
        "inputs": [{"id": "name", "property": "value", "value": "Connect"}],
        "changedPropIds": ["name.value"],
    }
    response = httpx.post(
        f"{dash_app.pub.server.url}{dash_app.prefix}_dash-update-component",
        json=update,
        headers=dash_app.pub.headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["response"]["greeting"]["children"] == "Hello, Connect!"


def test_shiny_session_answers_an_input_over_the_websocket(shiny_app: Deployed) -> None:
    page = shiny_app.get()
    assert page.status_code == 200
    script = re.search(r'<script src="(lib/shiny-[^"]+/shiny\.js)"', page.text)[1]
    assert shiny_app.get(script).status_code == 200  # relative asset URLs resolve under the prefix

    async def session() -> str:
        async with shiny_app.websocket("websocket/") as ws:
            init = {"name": "Connect", ".clientdata_output_greeting_hidden": False}
            await ws.send(json.dumps({"method": "init", "data": init}))
            return await until(ws, lambda m: json.loads(m).get("values", {}).get("greeting"))

    assert run(session()) == "Hello, Connect!"


def test_streamlit_session_runs_the_script_over_the_websocket(streamlit_app: Deployed) -> None:
    page = streamlit_app.get()
    assert page.status_code == 200 and "<title>Streamlit</title>" in page.text
    script = re.search(r'<script type="module" crossorigin src="\./(static/js/[^"]+\.js)"', page.text)[1]
    assert streamlit_app.get(script).status_code == 200
    assert streamlit_app.get("_stcore/health").text == "ok"

    async def session() -> tuple[str | None, bytes]:
        # The page offers "streamlit" plus a token slot; Streamlit picks the first.
        async with streamlit_app.websocket("_stcore/stream", subprotocols=["streamlit", "PLACEHOLDER"]) as ws:
            await ws.send(b"Z\x00")  # BackMsg{rerun_script: ClientState{}} (field 11, empty)
            text = b"Hello from Streamlit, run by Packyard."
            return ws.subprotocol, await until(ws, lambda m: m if text in m else None)

    subprotocol, message = run(session())
    assert subprotocol == "streamlit" and isinstance(message, bytes)


def test_bokeh_session_pulls_its_document_over_the_websocket(bokeh_app: Deployed) -> None:
    assert f"starts again for {bokeh_app.prefix}" in bokeh_app.output
    page = bokeh_app.get()
    assert page.status_code == 200
    script = re.search(r'<script src="([^"]+/static/js/bokeh\.min\.js[^"]*)"', page.text)[1]
    assert script.startswith(bokeh_app.prefix) and bokeh_app.pub.get(script).status_code == 200
    token = re.search(r'"token":"([^"]+)"', page.text)[1]

    async def session() -> dict[str, Any]:
        async with bokeh_app.websocket("ws", subprotocols=["bokeh", token]) as ws:
            ack = json.loads(await ws.recv())
            assert ack["msgtype"] == "ACK", ack
            await ws.recv(), await ws.recv()  # its metadata and content
            for part in ({"msgid": "1", "msgtype": "PULL-DOC-REQ"}, {}, {}):
                await ws.send(json.dumps(part))
            header = await until(ws, lambda m: json.loads(m) if "PULL-DOC-REPLY" in m else None)
            await ws.recv()  # metadata
            return {"header": header, "content": json.loads(await ws.recv())}

    reply = run(session())
    assert reply["header"]["reqid"] == "1"
    assert "Hello from Bokeh, run by Packyard." in json.dumps(reply["content"])


def test_cross_origin_handshakes_are_refused(shiny_app: Deployed) -> None:
    async def handshake() -> InvalidStatus:
        with pytest.raises(InvalidStatus) as refused:
            async with shiny_app.websocket("websocket/", origin="http://evil.example"):
                pass
        return refused.value

    refusal = run(handshake())
    assert refusal.response.status_code == 403
    assert b"origin `http://evil.example` refused" in refusal.response.body


def test_a_websocket_to_content_the_caller_may_not_see_is_refused(shiny_app: Deployed) -> None:
    url = shiny_app.pub.server.url.replace("http://", "ws://") + shiny_app.prefix + "websocket/"

    async def handshake(headers: dict[str, str]) -> InvalidStatus:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, origin=shiny_app.pub.server.url, additional_headers=headers):
                pass
        return refused.value

    assert run(handshake({})).response.status_code == 401
    shiny_app.pub.server.cli("user", "create", "wendy", "--role", "viewer")
    viewer = shiny_app.pub.server.cli("key", "create", "--user", "wendy", "-q").stdout.strip()
    refused = run(handshake({"Authorization": f"Key {viewer}"}))
    assert refused.response.status_code == 403 and b"may not see content" in refused.response.body


def test_an_app_that_refuses_the_handshake_refuses_the_browser(shiny_app: Deployed) -> None:
    async def handshake() -> InvalidStatus:
        with pytest.raises(InvalidStatus) as refused:
            async with shiny_app.websocket("no-such-socket"):
                pass
        return refused.value

    assert run(handshake()).response.status_code == 403  # Starlette's answer to an unrouted websocket


def test_a_session_whose_app_dies_is_closed_not_left_hanging(shiny_app: Deployed) -> None:
    async def session() -> tuple[int, float]:
        async with shiny_app.websocket("websocket/") as ws:
            await ws.send(json.dumps({"method": "init", "data": {"name": "x"}}))
            await ws.recv()  # the session is up
            os.kill(shiny_app.pid, signal.SIGKILL)
            began = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await ws.recv()
            return closed.value.rcvd.code, time.monotonic() - began

    code, seconds = run(session())
    assert code == 1011 and seconds < 5


def test_an_app_mode_that_does_not_run_yet_fails_its_deploy(pub: Publishing, apps: Path) -> None:
    app = apps / "gradio-app"
    app.mkdir()
    (app / "app.py").write_text("import gradio\n")
    (app / "requirements.txt").write_text("gradio\n")
    result = pub.deploy("gradio", app, check=False)
    assert result.returncode == 1
    assert (
        "manifest.json: `metadata.appmode` is `python-gradio`, which this server does not run yet; it runs "
        "python-fastapi, python-api, python-dash, python-shiny, python-streamlit, python-bokeh "
        "(`rsconnect deploy fastapi|flask|api|dash|shiny|streamlit|bokeh`)"
    ) in result.stdout + result.stderr


# -- viewers in a browser (issue 14) -------------------------------------------------------------------------------

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def vera(pub: Publishing) -> str:
    """Viewer `vera`, with a web password, a member of the group `analysts` that an administrator made."""
    web_user(pub.server, "vera", "viewer", PASSWORD)
    pub.server.cli("group", "create", "analysts")
    pub.server.cli("group", "add", "analysts", "vera")
    return "vera"


def share(pub: Publishing, guid: str, access_type: str, group: str | None = None) -> None:
    assert pub.api("PATCH", f"/v1/content/{guid}", json={"access_type": access_type}).status_code == 200
    if group:
        found = pub.api("GET", "/v1/groups", params={"prefix": group}).json()["results"]
        body = {"principal_guid": found[0]["guid"], "principal_type": "group", "role": "viewer"}
        assert pub.api("POST", f"/v1/content/{guid}/permissions", json=body).status_code == 200
    pub.server.wait_synced()  # the proxy's cached copy follows the change log


def test_a_viewer_opens_dashboards_in_a_browser_and_the_app_knows_who(
    pub: Publishing, streamlit_app: Deployed, dash_app: Deployed, vera: str, browser: Browser
) -> None:
    share(pub, streamlit_app.guid, "logged_in")
    share(pub, dash_app.guid, "acl", group="analysts")
    anonymous = new_page(browser, pub.server.url)
    try:
        anonymous.goto(streamlit_app.prefix)
        assert "/login?next=" in anonymous.url  # the sign-in page, which leads back to the app
        anonymous.get_by_label("User name").fill(vera)
        anonymous.get_by_label("Password").fill(PASSWORD)
        anonymous.get_by_role("button", name="Sign in").click()
        anonymous.wait_for_url(f"**{streamlit_app.prefix}")
        # Streamlit draws the page from its websocket; the script read the header the proxy wrote.
        anonymous.get_by_text("Viewing: vera (analysts)").wait_for(timeout=60_000)
    finally:
        anonymous.context.close()
    page = sign_in(browser, pub.server.url, vera, PASSWORD)
    try:
        page.goto(dash_app.prefix)  # shared with her group only
        page.locator("#greeting").get_by_text("Hello, packyard!").wait_for(timeout=60_000)
    finally:
        page.context.close()
