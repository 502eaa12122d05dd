"""The `packyard` command: server-host commands on the data directory, and `add` for remote uploads."""

from __future__ import annotations

import errno
import shlex
from pathlib import Path
from typing import Annotated

import typer

from packyard import formatting
from packyard.cli.env import env_app
from packyard.cli.local import DataDir, local_session, settings_for
from packyard.cli.mirror import mirror_app
from packyard.cli.output import err, fail, out, styled, table
from packyard.cli.policy import policy_app
from packyard.cli.publishing import content_app, key_app, user_app
from packyard.cli.sharing import group_app  # also adds `content share`, `unshare` and `access`
from packyard.cli.trust import trust_app
from packyard.config import SERVED_ADDRESS_NAME
from packyard.db import Database
from packyard.errors import ConfigError, PackyardError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Packyard: Python package repository and publishing server.",
)
source_app = typer.Typer(no_args_is_help=True, help="Sources hold packages.")
repo_app = typer.Typer(no_args_is_help=True, help="Repositories serve sources to pip and uv.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens for uploads and authenticated repositories.")
app.add_typer(source_app, name="source")
app.add_typer(repo_app, name="repo")
app.add_typer(token_app, name="token")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"packyard {version('packyard')}")
        raise typer.Exit


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Packyard: Python package repository and publishing server."""


@app.command()
def run(
    data_dir: DataDir = None,
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on.", show_default="`server.host`: 127.0.0.1")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.", show_default="`server.port`: 4242")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="Server processes on this machine (PostgreSQL only).", show_default="`server.workers`: 1"
        ),
    ] = None,
) -> None:
    """Start the server; on first start, create the data directory."""
    from packyard.server import bind, serve
    from packyard.tls import check_server_tls
    from packyard.workers import check_database

    overrides = {}
    if host:
        overrides["PACKYARD_SERVER_HOST"] = host
    if port:
        overrides["PACKYARD_SERVER_PORT"] = str(port)
    if workers:
        overrides["PACKYARD_SERVER_WORKERS"] = str(workers)
    settings = settings_for(data_dir, create=True, overrides=overrides)
    try:
        check_database(settings)
        check_server_tls(settings)
    except ConfigError as exc:
        fail(str(exc))
    host, port = settings.server.host, settings.server.port
    try:
        sock = bind(host, port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            fail(f"Could not listen on `{host}:{port}`", cause=exc)
        other = _free_port(host, port)
        again = ["packyard", "run", *(["--data-dir", str(data_dir)] if data_dir else [])]
        again += [*(["--host", host] if "PACKYARD_SERVER_HOST" in overrides else []), "--port", str(other)]
        make = ["make", "run", *([f"DATA_DIR={data_dir}"] if data_dir else [])]
        make += [*([f"HOST={host}"] if "PACKYARD_SERVER_HOST" in overrides else []), f"PORT={other}"]
        fail(
            f"Port {port} on `{host}` is already in use, by another server or an earlier `packyard run`",
            hint=f"Stop that server, or choose another port: `{shlex.join(again)}` "
            f"(from a Packyard checkout: `{shlex.join(make)}`), or set `[server] port` in packyard.toml.",
        )
    served = settings.data_dir / SERVED_ADDRESS_NAME
    if settings.address_configured:
        served.unlink(missing_ok=True)
    else:
        served.write_text(settings.server.address + "\n")
    processes = f", {settings.server.workers} workers" if settings.server.workers > 1 else ""
    scheme = "https" if settings.server.tls_certificate else "http"
    out.print(f"Packyard listening on {scheme}://{host}:{port} (data: {settings.data_dir}{processes})", soft_wrap=True)
    out.print(f"Package index: {settings.server.address.rstrip('/')}/pypi/latest/simple/", soft_wrap=True)
    serve(settings, sock)


def _free_port(host: str, taken: int) -> int:
    """The next free port after `taken` (else any free one), to suggest instead of a busy one."""
    import socket

    for candidate in [*range(taken + 1, min(taken + 20, 65536)), 0]:
        try:
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
                s.bind((host, candidate))
                return int(s.getsockname()[1])
        except OSError:
            continue
    return taken + 1


@app.command()
def init(data_dir: DataDir = None) -> None:
    """Create a data directory (configuration and database) without starting the server."""
    from packyard.changelog.prepare import prepare

    settings = settings_for(data_dir, create=True)
    db = Database(settings.database_url)
    try:
        prepare(db, settings.mirror.upstream)
    except PackyardError as exc:
        fail(str(exc))
    finally:
        db.dispose()
    where = shlex.quote(str(settings.data_dir))
    out.print(
        f"Data directory {settings.data_dir} is ready; start the server with `packyard run --data-dir {where}`.",
        soft_wrap=True,
    )


@source_app.command("create")
def source_create(
    name: Annotated[str, typer.Option(help="Source name, e.g. `local-python-src`.")],
    type: Annotated[
        str,
        typer.Option(
            "--type", help="`local-python` (uploads), `pypi` (a mirror), `curated-pypi` or `local-r` (R uploads)."
        ),
    ] = "local-python",
    upstream: Annotated[
        str | None,
        typer.Option(help="Simple index a `pypi` or `curated-pypi` source mirrors; default: `\\[mirror] upstream`."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a source."""
    from packyard.repository.services import create_source

    with local_session(data_dir) as (settings, session):
        create_source(session, name, type, upstream)
    out.print(f"Created source `{name}` ({type}).")
    if type not in ("local-python", "local-r") and not (upstream or settings.mirror.upstream):
        out.print("hint: it has no upstream yet; set `[mirror] upstream` or recreate it with `--upstream`.")


@source_app.command("update")
def source_update(
    source: Annotated[str, typer.Option(help="A `curated-pypi` source.")],
    file: Annotated[Path, typer.Option("--file", help="requirements.txt: `name` or `name<specifier>` per line.")],
    snapshot: Annotated[str | None, typer.Option(help="Resolve as of this date (YYYY-MM-DD); default: today.")] = None,
    commit: Annotated[bool, typer.Option("--commit", help="Apply the changes; without it, only print them.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Set a curated source's allowlist from a requirements file, dependencies resolved with uv."""
    from datetime import date

    from packyard.cli.mirror import _uv
    from packyard.repository.policy import curated

    if not file.is_file():
        fail(f"`{file}` does not exist.")
    day = None
    if snapshot:
        try:
            day = date.fromisoformat(snapshot)
        except ValueError:
            fail(f"Snapshot `{snapshot}` is not a date.", hint="Write it as YYYY-MM-DD, e.g. 2026-01-15.")
    with local_session(data_dir) as (settings, session):
        src = curated.get_curated(session, source)
        upstream = src.upstream or settings.mirror.upstream
        if not upstream:
            fail(f"Source `{source}` has no upstream.", hint="Set `[mirror] upstream` in packyard.toml.")
        err.print(f"Resolving {file} against {upstream} ...")
        changes = curated.plan(session, src, curated.resolve(file, upstream, day, _uv()))
        if commit:
            curated.apply(session, src, changes)
    table(["", "PROJECT", "BEFORE", "AFTER"], [[c.symbol, c.project, c.old or "-", c.new or "-"] for c in changes])
    if not changes:
        out.print(f"Source `{source}` already matches {file}; nothing to change.")
    elif commit:
        out.print(f"Applied {len(changes)} changes to source `{source}`.")
    else:
        out.print(f"Dry run: {len(changes)} changes, nothing applied. Run again with --commit to apply them.")


@source_app.command("list")
def source_list(data_dir: DataDir = None) -> None:
    """List sources."""
    from packyard.repository.services import list_sources

    with local_session(data_dir) as (settings, session):
        rows = [
            [
                s.name,
                s.type,
                str(s.projects),
                str(s.files),
                s.upstream or (settings.mirror.upstream + " (config)" if s.mirrors else "-"),
                formatting.day(s.created_at),
            ]
            for s in list_sources(session)
        ]
    table(["NAME", "TYPE", "PROJECTS", "FILES", "UPSTREAM", "CREATED"], rows)


@repo_app.command("create")
def repo_create(
    name: Annotated[str, typer.Option(help="Repository name; it is the first segment of its URLs.")],
    description: Annotated[str, typer.Option(help="What the repository is for.")] = "",
    authenticated: Annotated[bool, typer.Option("--authenticated", help="Require a token to read.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a repository."""
    from packyard.repository.services import create_repository

    with local_session(data_dir) as (settings, session):
        create_repository(session, name, description, authenticated)
    out.print(f"Created repository `{name}`: {settings.server.address}/{name}/latest/simple/", soft_wrap=True)


@repo_app.command("edit")
def repo_edit(
    name: Annotated[str, typer.Option(help="Repository name.")],
    authenticated: Annotated[
        bool | None, typer.Option("--authenticated/--public", help="Require a token to read.", show_default=False)
    ] = None,
    groups: Annotated[
        str | None,
        typer.Option(
            help="Provider groups whose members read it through single sign-on, comma-separated; '' for none.",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Change whether a repository requires a token to read, and which groups read it through single sign-on."""
    from packyard.repository.services import set_authenticated, set_reader_groups

    if authenticated is None and groups is None:
        fail(
            f"Nothing to change for repository `{name}`",
            hint=f"Pass `--authenticated`, `--public` or `--groups`, e.g. `packyard repo edit --name {name} "
            "--groups analysts,data-eng`.",
        )
    with local_session(data_dir) as (_, session):
        if authenticated is not None:
            set_authenticated(session, name, authenticated)
        if groups is not None:
            repo = set_reader_groups(session, name, groups.split(","))
            now_authenticated = repo.authenticated
    if authenticated is not None:
        out.print(f"Repository `{name}` is now {'authenticated' if authenticated else 'public'}.")
    if groups is not None:
        readers = ", ".join(f"`{g}`" for g in groups.split(",") if g.strip())
        out.print(f"Repository `{name}` is read through single sign-on by {readers or 'no group'}.")
        if readers and not now_authenticated:
            err.print(
                styled(f"\nhint: `{name}` is public, so anyone reads it without signing in; make it need a token "
                       f"with `packyard repo edit --name {name} --authenticated`."),
                markup=True, soft_wrap=True,
            )  # fmt: skip


@repo_app.command("list")
def repo_list(data_dir: DataDir = None) -> None:
    """List repositories, the sources each serves in priority order, and the groups that read it."""
    from sqlalchemy import select

    from packyard.repository.models import Repository

    with local_session(data_dir) as (settings, session):
        rows = [
            [
                r.name,
                ", ".join(s.source.name for s in r.subscriptions) or "-",
                "yes" if r.authenticated else "no",
                ",".join(g for g in r.reader_groups.split("\n") if g) or "-",
                f"{settings.server.address}/{r.name}/latest/simple/",
            ]
            for r in session.scalars(select(Repository).order_by(Repository.name))
        ]
    table(["NAME", "SOURCES", "AUTHENTICATED", "GROUPS", "URL"], rows)


@repo_app.command("subscribe")
def repo_subscribe(
    repo: Annotated[str, typer.Option(help="Repository name.")],
    source: Annotated[str, typer.Option(help="Source name.")],
    priority: Annotated[int | None, typer.Option(help="Lower wins a name; default: below existing.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Serve a source from a repository."""
    from packyard.repository.services import subscribe

    with local_session(data_dir) as (_, session):
        sub = subscribe(session, repo, source, priority)
    out.print(f"Repository `{repo}` now serves source `{source}` at priority {sub.priority}.")


@token_app.command("create")
def token_create(
    description: Annotated[str, typer.Option(help="Who or what uses the token.")],
    scope: Annotated[list[str], typer.Option(help="sources:write, repos:read or admin; repeatable.")],
    sources: Annotated[str, typer.Option(help="Sources for sources:write, comma-separated, or '*'.")] = "",
    repos: Annotated[str, typer.Option(help="Repositories for repos:read, comma-separated, or '*'.")] = "",
    expires: Annotated[str, typer.Option(help="Lifetime: 30d, 12h, 45m, 90s or never.")] = "never",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the token.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create an API token and print it once."""
    from packyard.auth.tokens import create_token, parse_expires

    with local_session(data_dir) as (settings, session):
        try:
            token, row = create_token(
                session,
                settings.token_secret(),
                settings.server.address,
                description,
                scope,
                [sources] if sources else [],
                [repos] if repos else [],
                parse_expires(expires),
            )
        except PackyardError as exc:
            fail(str(exc))
    if not quiet:
        from packyard.cli.output import err

        expiry = f"expires {formatting.moment(row.expires_at)}" if row.expires_at else "never expires"
        err.print(f"Created token `{row.jti}` ({expiry}). Record it now: it is not shown again.")
    print(token)


@token_app.command("list")
def token_list(data_dir: DataDir = None) -> None:
    """List tokens (never the tokens themselves)."""
    from packyard.auth.tokens import list_tokens, token_state

    with local_session(data_dir) as (_, session):
        rows = []
        for t in list_tokens(session):
            state = token_state(t)
            grants = (
                t.scopes + (f" sources={t.sources}" if t.sources else "") + (f" repos={t.repos}" if t.repos else "")
            )
            rows.append(
                [
                    t.jti,
                    t.description,
                    grants,
                    formatting.day(t.created_at),
                    formatting.moment(t.expires_at),
                    state,
                ]
            )
    table(["ID", "DESCRIPTION", "GRANTS", "CREATED", "EXPIRES", "STATE"], rows)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[
        str, typer.Argument(help="Token id (`jti`) from `packyard token list`, or a unique prefix of one.")
    ],
    data_dir: DataDir = None,
) -> None:
    """Revoke a token; the server refuses it within a second."""
    from packyard.auth.tokens import revoke_token
    from packyard.cli.lookup import token_id as find

    with local_session(data_dir) as (_, session):
        token_id = find(session, token_id)
        revoke_token(session, token_id)
    out.print(f"Revoked token `{token_id}`.")


@repo_app.command("rebuild")
def repo_rebuild(name: Annotated[str, typer.Option(help="Repository name.")], data_dir: DataDir = None) -> None:
    """Re-render every page of a repository (after an upgrade or a repair of its data)."""
    from packyard.repository.services import rebuild

    with local_session(data_dir) as (_, session):
        count = rebuild(session, name)
    out.print(f"Re-rendered repository `{name}`: {count} projects.")


def _yank(
    yanked: bool, source: str, project: str, version: str, filename: str | None, reason: str, data_dir: Path | None
) -> None:
    from packyard.repository.services import set_yanked

    with local_session(data_dir) as (_, session):
        files = set_yanked(session, source, project, version, filename, yanked, reason)
    verb = "Yanked" if yanked else "Unyanked"
    for f in files:
        out.print(f"{verb} {f.filename}")


Source = Annotated[str, typer.Option(help="Source holding the project.")]
Project = Annotated[str, typer.Option(help="Project name.")]
Version = Annotated[str, typer.Option(help="Release version.")]
Filename = Annotated[str | None, typer.Option(help="Only this file of the release.")]


@app.command()
def yank(
    source: Source,
    project: Project,
    version: Version,
    reason: Annotated[str, typer.Option(help="Why; installers show it.")] = "",
    filename: Filename = None,
    data_dir: DataDir = None,
) -> None:
    """Yank a release or one file (PEP 592): installers skip it unless pinned exactly."""
    _yank(True, source, project, version, filename, reason, data_dir)


@app.command()
def unyank(
    source: Source, project: Project, version: Version, filename: Filename = None, data_dir: DataDir = None
) -> None:
    """Undo a yank."""
    _yank(False, source, project, version, filename, "", data_dir)


@app.command()
def delete(
    source: Source, project: Project, version: Version, filename: Filename = None, data_dir: DataDir = None
) -> None:
    """Remove a release or one file from `latest`; dated snapshots from before today still serve it."""
    from packyard.repository.services import delete_files

    with local_session(data_dir) as (_, session):
        files = delete_files(session, source, project, version, filename)
    for f in files:
        out.print(f"Deleted {f.filename}")


@app.command()
def add(
    source: Annotated[str, typer.Option(help="Source to upload into, e.g. `local-python-src`.")],
    path: Annotated[
        list[Path], typer.Option(help="A wheel, sdist, R source package (`name_1.0.tar.gz`) or folder; repeatable.")
    ],
    address: Annotated[str | None, typer.Option(envvar="PACKYARD_ADDRESS", help="Server address.")] = None,
    token: Annotated[str | None, typer.Option(envvar="PACKYARD_TOKEN", help="API token.")] = None,
) -> None:
    """Upload distributions or R source packages to a server, skipping files already there."""
    from packyard.cli.add import add_files

    add_files(source, path, address, token)


app.add_typer(policy_app, name="policy")
app.add_typer(mirror_app, name="mirror")
app.add_typer(user_app, name="user")
app.add_typer(key_app, name="key")
app.add_typer(content_app, name="content")
app.add_typer(group_app, name="group")
app.add_typer(env_app, name="env")
app.add_typer(trust_app, name="trust")


def main() -> None:
    app()
