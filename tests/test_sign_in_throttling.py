"""Password guessing at the sign-in form of a real server, on SQLite and PostgreSQL: failures are counted per user
name and per client address (clients bind 127.0.0.2 and up), a 429 with `Retry-After` and a sentence saying when
to retry answers every attempt during a lockout, even with the right password, and other names and addresses
sign in as before. Moving `locked_until` into the past in the database stands in for waiting out a lockout."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from packyard.db import UTCDateTime
from tests.browser import web_user
from tests.conftest import Server

PASSWORD = "correct horse battery"
WRONG = "The user name or password is not right; check both and sign in again."
PAUSED = re.compile(
    r"Too many failed sign-ins (for user name `(?P<name>[^`]+)`|from your address \(`(?P<address>[^`]+)`\)); "
    r"sign-in is paused for (?P<seconds>\d+) seconds, even with the right password\. "
    r"Try again after (?P<until>\d\d:\d\d:\d\d) UTC\."
)
_failures = sa.table("sign_in_failures", sa.column("key"), sa.column("locked_until", UTCDateTime()))


@pytest.fixture(scope="module")
def web(server: Server) -> Server:
    for name in ("ann", "bob", "cy", "dee"):
        web_user(server, name, "viewer", PASSWORD)
    return server


@contextmanager
def client_from(server: Server, address: str) -> Iterator[httpx.Client]:
    """A browser-like client whose connections come from `address` (any 127.x.y.z reaches the server)."""
    with httpx.Client(base_url=server.url, transport=httpx.HTTPTransport(local_address=address)) as client:
        yield client


def sign_in(
    client: httpx.Client, username: str, password: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    form = {"username": username, "password": password, "csrf_token": token.group(1), "next": "/"}
    return client.post("/login", data=form, headers=headers)


def paused(response: httpx.Response) -> re.Match[str]:
    """The 429's sentence, checked against its Retry-After."""
    assert response.status_code == 429, f"{response.status_code}: {response.text}"
    found = PAUSED.search(response.text)
    assert found is not None, response.text
    assert response.headers["retry-after"] == found["seconds"]
    return found


def end_lockout(server: Server, key: str) -> None:
    engine = sa.create_engine(server.sql_url)
    try:
        with engine.begin() as conn:
            past = datetime.now(UTC) - timedelta(seconds=1)
            assert conn.execute(sa.update(_failures).where(_failures.c.key == key).values(locked_until=past)).rowcount
    finally:
        engine.dispose()


def test_thirty_wrong_passwords_pause_the_name_even_for_the_right_password(web: Server) -> None:
    with client_from(web, "127.0.0.2") as guesser, client_from(web, "127.0.0.3") as owner:
        answers = [sign_in(guesser, "ann", f"guess {n}") for n in range(30)]
        # The 5th failure is checked like the first four, and pauses the name: no password is checked after it.
        assert [r.status_code for r in answers[:5]] == [401] * 5 and WRONG in answers[4].text
        for response in answers[5:]:
            found = paused(response)
            assert found["name"] == "ann" and 1 <= int(found["seconds"]) <= 30
        assert paused(sign_in(guesser, "ann", PASSWORD))["name"] == "ann"
        assert paused(sign_in(owner, "ann", PASSWORD))["name"] == "ann"  # from any address
        # Another name from the guessing address is unaffected: it made 5 failures, not 20.
        with client_from(web, "127.0.0.2") as neighbour:
            assert sign_in(neighbour, "bob", PASSWORD).status_code == 303

        # Past the pause, the next failure pauses the name again, for twice as long.
        end_lockout(web, "user:ann")
        assert sign_in(guesser, "ann", "guess 31").status_code == 401
        assert 30 < int(paused(sign_in(guesser, "ann", "guess 32"))["seconds"]) <= 60

        # An administrator ends the pause (`user unlock`, or a new password); the right password then signs in, and
        # the name's count starts again.
        web.cli("user", "unlock", "ann")
        assert sign_in(owner, "ann", PASSWORD).status_code == 303
        assert [sign_in(guesser, "ann", f"again {n}").status_code for n in range(4)] == [401] * 4


def test_twenty_failures_over_any_names_pause_the_address(web: Server) -> None:
    with client_from(web, "127.0.0.4") as sprayer, client_from(web, "127.0.0.5") as other:
        assert {sign_in(sprayer, f"guess-{n}", PASSWORD).status_code for n in range(20)} == {401}
        assert paused(sign_in(sprayer, "guess-20", PASSWORD))["address"] == "127.0.0.4"
        assert paused(sign_in(sprayer, "cy", PASSWORD))["address"] == "127.0.0.4"
        # X-Forwarded-For counts only from the trusted proxy (127.0.0.1): from here it changes nothing.
        spoofed = sign_in(sprayer, "cy", PASSWORD, headers={"X-Forwarded-For": "203.0.113.9"})
        assert paused(spoofed)["address"] == "127.0.0.4"
        assert sign_in(other, "cy", PASSWORD).status_code == 303


def test_guesses_sent_at_once_get_no_more_than_the_allowance(web: Server) -> None:
    def guess(n: int) -> int:
        with client_from(web, "127.0.0.6") as client:
            return sign_in(client, "dee", f"parallel guess {n}").status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(guess, range(12)))
    assert sorted(statuses) == [401] * 5 + [429] * 7
