"""`packyard user`, `packyard key` and `packyard content`: publishing accounts and deployed content."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer
from sqlalchemy import select

from packyard import formatting
from packyard.cli import lookup
from packyard.cli.local import DataDir, local_session
from packyard.cli.output import err, fail, out, table

user_app = typer.Typer(no_args_is_help=True, help="Publishing users: admin, publisher or viewer.")
key_app = typer.Typer(no_args_is_help=True, help="API keys for rsconnect (`Authorization: Key`).")
content_app = typer.Typer(no_args_is_help=True, help="Deployed content.")
CONTENT_HELP = "Content GUID from `packyard content list`, a unique prefix of one, or the content's name."


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="admin, publisher or viewer.")] = "publisher",
    email: Annotated[str, typer.Option(help="Contact address.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read a web sign-in password from the first line of stdin.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a user."""
    from packyard.publishing.signin import set_password
    from packyard.publishing.users import create_user

    password = (
        _read_password(f"packyard user create {username} --role {role} --password-stdin") if password_stdin else None
    )
    with local_session(data_dir) as (_, session):
        user = create_user(session, username, role, email)
        if password is not None:
            set_password(session, username, password)
        out.print(f"Created {user.role} `{user.username}` ({user.guid}).")
    out.print(f"hint: `packyard key create --user {username}` gives them an API key for rsconnect.")
    if password is None:
        out.print(f"hint: `packyard user set-password {username}` lets them sign in to the web pages.")


def _read_password(command: str) -> str:
    line = sys.stdin.readline()
    password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        fail("No password on stdin.", hint=f"Pipe it in: `printf '%s\\n' \"$PASSWORD\" | {command}`.")
    return password


@user_app.command("set-password")
def user_set_password(
    username: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Set the password a user signs in to the web pages with; their open sessions end."""
    from packyard.publishing.signin import set_password

    if password_stdin:
        password = _read_password(f"packyard user set-password {username} --password-stdin")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with local_session(data_dir) as (_, session):
        set_password(session, username, password)
    out.print(f"Set the password of `{username}`.")


@user_app.command("lock")
def user_lock(
    username: Annotated[str, typer.Argument(help="Login name.")],
    data_dir: DataDir = None,
) -> None:
    """Lock a user: the server refuses their keys within a second, and their web sessions end now."""
    from packyard.publishing.signin import set_locked

    with local_session(data_dir) as (_, session):
        set_locked(session, username, True)
    out.print(f"Locked `{username}`.")


@user_app.command("unlock")
def user_unlock(
    username: Annotated[str, typer.Argument(help="Login name.")],
    data_dir: DataDir = None,
) -> None:
    """Unlock a user."""
    from packyard.publishing.signin import set_locked

    with local_session(data_dir) as (_, session):
        set_locked(session, username, False)
    out.print(f"Unlocked `{username}`.")


@user_app.command("list")
def user_list(data_dir: DataDir = None) -> None:
    """List users with their role and number of keys."""
    from packyard.publishing.users import list_users

    with local_session(data_dir) as (_, session):
        rows = [
            [u.username, u.role, u.email or "-", str(u.keys), "locked" if u.locked else "active", u.guid]
            for u in list_users(session)
        ]
    table(["USER", "ROLE", "EMAIL", "KEYS", "STATE", "GUID"], rows)


@user_app.command("set-role")
def user_set_role(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Argument(help="admin, publisher or viewer.")],
    data_dir: DataDir = None,
) -> None:
    """Change a user's role; the server applies it to their keys within a second."""
    from packyard.publishing.users import set_role

    with local_session(data_dir) as (_, session):
        set_role(session, username, role)
    out.print(f"`{username}` is now {role}.")


@key_app.command("create")
def key_create(
    user: Annotated[str, typer.Option("--user", help="The user the key acts as.")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the key.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create an API key and print it once."""
    from packyard.publishing.users import create_key

    with local_session(data_dir) as (settings, session):
        row, key = create_key(session, user, name)
        key_id = row.id
    if not quiet:
        err.print(f"Created key {key_id} for `{user}`. Record it now: it is not shown again.")
        err.print(f"Use it with: rsconnect add --server {settings.server.address} --name packyard --api-key <key>")
    print(key)


@key_app.command("list")
def key_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's keys.")] = None,
    data_dir: DataDir = None,
) -> None:
    """List keys (their first characters, never the keys)."""
    from packyard.publishing.users import list_keys

    with local_session(data_dir) as (_, session):
        rows = [
            [
                str(k.id),
                username,
                k.name or "-",
                k.prefix + "…",
                formatting.day(k.created_at),
                formatting.moment(k.last_used_at),
            ]
            for k, username in list_keys(session, user)
        ]
    table(["ID", "USER", "NAME", "KEY", "CREATED", "LAST USED"], rows)


@key_app.command("revoke")
def key_revoke(
    key_id: Annotated[int, typer.Argument(help="Key id from `packyard key list`.")],
    data_dir: DataDir = None,
) -> None:
    """Delete a key; the server refuses it within a second."""
    from packyard.publishing.users import revoke_key

    with local_session(data_dir) as (_, session):
        revoke_key(session, key_id)
    out.print(f"Revoked key {key_id}.")


@content_app.command("list")
def content_list(data_dir: DataDir = None) -> None:
    """List deployed content."""
    from packyard.publishing.models import Content, User

    with local_session(data_dir) as (_, session):
        query = select(Content, User.username).join(User, User.id == Content.owner_id).order_by(Content.id)
        rows = [
            [
                c.guid,
                c.name,
                c.title or "-",
                c.app_mode,
                username,
                str(c.bundle_id) if c.bundle_id else "-",
                formatting.moment(c.last_deployed_at),
            ]
            for c, username in session.execute(query)
        ]
    table(["GUID", "NAME", "TITLE", "MODE", "OWNER", "BUNDLE", "DEPLOYED"], rows)


def _setting(name: str, meaning: str) -> object:
    flag = "--" + name.replace("_", "-")
    return typer.Option(flag, metavar="N|default", help=f"{meaning} (`default`: the server's).")


@content_app.command("runtime")
def content_runtime(
    guid: Annotated[str, typer.Argument(help=CONTENT_HELP)],
    min_processes: Annotated[str | None, _setting("min_processes", "Processes kept running")] = None,
    max_processes: Annotated[str | None, _setting("max_processes", "Most processes at once")] = None,
    max_conns_per_process: Annotated[
        str | None, _setting("max_conns_per_process", "Most connections one process serves")
    ] = None,
    load_factor: Annotated[str | None, _setting("load_factor", "0.0-1.0: how early another process starts")] = None,
    idle_timeout: Annotated[str | None, _setting("idle_timeout", "Seconds an unused process lives")] = None,
    init_timeout: Annotated[str | None, _setting("init_timeout", "Seconds a new process has to answer")] = None,
    connection_timeout: Annotated[
        str | None, _setting("connection_timeout", "Seconds the proxy waits on a silent app, 0: never")
    ] = None,
    read_timeout: Annotated[
        str | None, _setting("read_timeout", "Seconds the proxy waits on a silent client, 0: never")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Show a content's runtime settings and where each comes from; with options, change them first.

    The running server applies a change within a second, without a redeploy."""
    from packyard.publishing import content as contents
    from packyard.publishing.runtime import limits

    given = {
        "min_processes": min_processes,
        "max_processes": max_processes,
        "max_conns_per_process": max_conns_per_process,
        "load_factor": load_factor,
        "idle_timeout": idle_timeout,
        "init_timeout": init_timeout,
        "connection_timeout": connection_timeout,
        "read_timeout": read_timeout,
    }
    with local_session(data_dir) as (settings, session):
        guid = lookup.content_guid(session, guid)
        content = contents.get(session, guid)
        changes = {name: limits.parse(name, text) for name, text in given.items() if text is not None}
        if limits.apply(content, changes, settings.scheduler):
            contents.runtime_changed(session, content)
            err.print(f"Updated the runtime settings of `{content.name}` ({guid}).")
        rows = [[name, f"{value:g}", source] for name, value, source in limits.described(content, settings.scheduler)]
    table(["SETTING", "VALUE", "FROM"], rows)


@content_app.command("logs")
def content_logs(
    guid: Annotated[str, typer.Argument(help=CONTENT_HELP)],
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines from the end.")] = 50,
    deploy: Annotated[bool, typer.Option("--deploy", help="Show the deploy log instead of the app's output.")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Print a content's output (its processes' stdout and stderr) or its deploy log."""
    with local_session(data_dir) as (settings, session):
        guid = lookup.content_guid(session, guid)
    # One folder per server process: `apps/`, or each worker's `workers/<n>/apps/` (`--workers`); the newest log wins.
    candidates = [settings.data_dir / "apps" / guid, *settings.data_dir.glob(f"workers/*/apps/{guid}")]
    folders = [folder for folder in candidates if folder.is_dir()]
    if not folders:
        fail(f"No content `{guid}` has run on this server.", hint="`packyard content list` shows the GUIDs.")
    name = "deploy.log" if deploy else "app.log"
    path = max((f / name for f in folders), key=lambda p: p.stat().st_mtime if p.exists() else 0.0)
    if not path.exists():
        out.print("(no output yet)")
        return
    with path.open(errors="replace") as f:
        for line in f.read().splitlines()[-lines:]:
            print(line)
        while follow:
            line = f.readline()
            if line:
                print(line, end="", flush=True)
            else:
                time.sleep(0.3)
