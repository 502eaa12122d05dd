"""`packyard group` and `packyard content share|unshare|access`: groups of users, and who a content is shared with.
Every change is in the change log, so a running server applies it within a second."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from packyard.cli import lookup
from packyard.cli.local import DataDir, local_session
from packyard.cli.output import fail, out, table
from packyard.cli.publishing import CONTENT_HELP, content_app

group_app = typer.Typer(no_args_is_help=True, help="Groups of users, which content can be shared with.")
GROUP_HELP = "Group name from `packyard group list`."
# What each access type lets in, as `packyard content access` says it.
ACCESS_WORDS = {
    "acl": "its owner, the users and groups it is shared with, and administrators",
    "logged_in": "every signed-in user",
    "all": "anyone, without signing in",
}


@group_app.command("create")
def group_create(name: Annotated[str, typer.Argument(help="Up to 100 characters.")], data_dir: DataDir = None) -> None:
    """Create a group."""
    from packyard.publishing import groups

    with local_session(data_dir) as (_, session):
        group = groups.create(session, name)
        out.print(f"Created group `{group.name}` ({group.guid}).")
    out.print(f"hint: `packyard group add {shlex.quote(group.name)} USER...` adds members.")


@group_app.command("list")
def group_list(data_dir: DataDir = None) -> None:
    """List groups with their number of members."""
    from packyard.publishing import groups

    with local_session(data_dir) as (_, session):
        counts = groups.member_counts(session)
        found, _ = groups.find(session)
        rows = [[g.name, str(counts.get(g.id, 0)), g.guid] for g in found]
    table(["GROUP", "MEMBERS", "GUID"], rows)


@group_app.command("members")
def group_members(name: Annotated[str, typer.Argument(help=GROUP_HELP)], data_dir: DataDir = None) -> None:
    """List a group's members."""
    from packyard.publishing import groups

    with local_session(data_dir) as (_, session):
        rows = [
            [u.username, u.role, "locked" if u.locked else "active"]
            for u in groups.members(session, groups.get(session, name))
        ]
    table(["USER", "ROLE", "STATE"], rows)


@group_app.command("add")
def group_add(
    name: Annotated[str, typer.Argument(help=GROUP_HELP)],
    usernames: Annotated[list[str], typer.Argument(metavar="USER...", help="Login names.")],
    data_dir: DataDir = None,
) -> None:
    """Add users to a group; they see what is shared with it within a second."""
    from packyard.publishing import groups, users

    with local_session(data_dir) as (_, session):
        group = groups.get(session, name)
        added = [u for u in usernames if groups.add_member(session, group, users.get_user(session, u))]
    for username in usernames:
        if username in added:
            out.print(f"Added `{username}` to group `{name}`.")
        else:
            out.print(f"`{username}` was a member of group `{name}` already.")


@group_app.command("remove")
def group_remove(
    name: Annotated[str, typer.Argument(help=GROUP_HELP)],
    username: Annotated[str, typer.Argument(help="Login name.")],
    data_dir: DataDir = None,
) -> None:
    """Remove a user from a group; what they saw through it is gone within a second."""
    from packyard.publishing import groups, users

    with local_session(data_dir) as (_, session):
        groups.remove_member(session, groups.get(session, name), users.get_user(session, username))
    out.print(f"Removed `{username}` from group `{name}`.")


@group_app.command("delete")
def group_delete(name: Annotated[str, typer.Argument(help=GROUP_HELP)], data_dir: DataDir = None) -> None:
    """Delete a group; content shared with it is no longer shared with its members."""
    from packyard.publishing import groups

    with local_session(data_dir) as (_, session):
        groups.delete(session, groups.get(session, name))
    out.print(f"Deleted group `{name}`.")


# -- a content's sharing (commands of `packyard content`) -------------------------------------------------------


UserOption = Annotated[str | None, typer.Option("--user", help="A user's login name.")]
GroupOption = Annotated[str | None, typer.Option("--group", help="A group's name.")]


def _principal_given(command: str, guid: str, user: str | None, group: str | None) -> tuple[str, str]:
    """(kind, name) from `--user` or `--group`, exactly one of them."""
    if (user is None) == (group is None):
        fail(
            f"Give one of `--user` and `--group` to `packyard content {command}`",
            hint=f"For example: `packyard content {command} {guid} --user NAME`.",
        )
    return ("user", user) if user is not None else ("group", group or "")


@content_app.command("share")
def content_share(
    guid: Annotated[str, typer.Argument(help=CONTENT_HELP)],
    user: UserOption = None,
    group: GroupOption = None,
    role: Annotated[
        str, typer.Option(help="`viewer`, or `owner` for a collaborator (who deploys and changes it).")
    ] = "viewer",
    data_dir: DataDir = None,
) -> None:
    """Share a content with a user or a group, or change the role they have."""
    from packyard.publishing import content as contents
    from packyard.publishing import permissions

    kind, name = _principal_given("share", guid, user, group)
    with local_session(data_dir) as (_, session):
        wanted = permissions.role_named(role)
        guid = lookup.content_guid(session, guid)
        content = contents.get(session, guid)
        _, what = permissions.grant(session, content, permissions.principal_named(session, name, kind), wanted)
    which, who, as_ = f"`{content.name}` ({guid})", f"{kind} `{name}`", _role_words(wanted)
    if what == "added":
        out.print(f"Shared {which} with {who} as {as_}.", soft_wrap=True)
    elif what == "changed":
        out.print(f"Changed the role of {who} on {which} to {as_}.", soft_wrap=True)
    else:
        out.print(f"{which} was shared with {who} as {as_} already.", soft_wrap=True)


@content_app.command("unshare")
def content_unshare(
    guid: Annotated[str, typer.Argument(help=CONTENT_HELP)],
    user: UserOption = None,
    group: GroupOption = None,
    data_dir: DataDir = None,
) -> None:
    """Stop sharing a content with a user or a group."""
    from packyard.publishing import content as contents
    from packyard.publishing import permissions

    kind, name = _principal_given("unshare", guid, user, group)
    with local_session(data_dir) as (_, session):
        guid = lookup.content_guid(session, guid)
        content = contents.get(session, guid)
        row = permissions.revoke(session, content, permissions.principal_named(session, name, kind))
        was = row.role
    out.print(
        f"`{content.name}` ({guid}) is no longer shared with {kind} `{name}` (was {_role_words(was)}).", soft_wrap=True
    )


@content_app.command("access")
def content_access(guid: Annotated[str, typer.Argument(help=CONTENT_HELP)], data_dir: DataDir = None) -> None:
    """Show who may open a content: its owner, its access type, and the users and groups it is shared with."""
    from sqlalchemy import select

    from packyard.publishing import content as contents
    from packyard.publishing import permissions
    from packyard.publishing.models import User

    with local_session(data_dir) as (_, session):
        guid = lookup.content_guid(session, guid)
        content = contents.get(session, guid)
        owner = session.scalar(select(User.username).where(User.id == content.owner_id)) or "?"
        shares = permissions.shares(session, content)
        access = content.access_type
    out.print(f"Content: `{content.name}` ({guid})", soft_wrap=True)
    out.print(f"Owner:   `{owner}`")
    out.print(f"Access:  {access} ({ACCESS_WORDS.get(access, access)})", soft_wrap=True)
    if not shares:
        out.print("Shared with no user or group.")
        return
    out.print()
    table(["NAME", "TYPE", "ROLE"], [[s.name, s.kind, _role_words(s.role)] for s in shares])


def _role_words(role: str) -> str:
    return "owner (collaborator)" if role == "owner" else role
