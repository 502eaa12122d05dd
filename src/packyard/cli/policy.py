"""`packyard policy`: block rules, and why a version is or is not served."""

from __future__ import annotations

from typing import Annotated

import typer

from packyard import formatting
from packyard.cli.local import DataDir
from packyard.cli.output import fail, out, table

policy_app = typer.Typer(no_args_is_help=True, help="Block rules: what a repository may not serve, and why.")


@policy_app.command("block")
def block(
    project: Annotated[str, typer.Argument(help="Project name (any spelling; matched normalized).")],
    reason: Annotated[str, typer.Option(help="Why; clients see it in the 403 of a blocked file.")],
    version: Annotated[str, typer.Option(help="Only versions matching this specifier, e.g. '<4.0'.")] = "",
    repo: Annotated[str | None, typer.Option(help="Only in this repository; default: every repository.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Block a project, or the versions of it that match a specifier."""
    from packyard.cli.local import local_session
    from packyard.repository.policy.admin import create_rule

    with local_session(data_dir) as (_, session):
        rule = create_rule(session, project, version, reason, repo)
        rule_id, name = rule.id, rule.project
    where = f"repository `{repo}`" if repo else "every repository"
    out.print(f"Rule {rule_id}: `{name}` {version or 'every version'} is blocked in {where}.")


@policy_app.command("list")
def list_(data_dir: DataDir = None) -> None:
    """List block rules."""
    from packyard.cli.local import local_session
    from packyard.repository.policy.admin import list_rules

    with local_session(data_dir) as (_, session):
        rows = [
            [str(r.id), r.project, r.specifier or "*", repo, r.reason, formatting.day(r.created_at)]
            for r, repo in list_rules(session)
        ]
    table(["ID", "PROJECT", "VERSIONS", "REPOSITORY", "REASON", "CREATED"], rows)


@policy_app.command("remove")
def remove(
    rule_id: Annotated[int, typer.Argument(help="Rule id, from `packyard policy list`.")], data_dir: DataDir = None
) -> None:
    """Remove a block rule."""
    from packyard.cli.local import local_session
    from packyard.repository.policy.admin import remove_rule

    with local_session(data_dir) as (_, session):
        rule = remove_rule(session, rule_id)
        name = rule.project
    out.print(f"Removed rule {rule_id} (`{name}`).")


@policy_app.command("test")
def test(
    requirement: Annotated[str, typer.Argument(help="NAME==VERSION")],
    repo: Annotated[str, typer.Option(help="Repository to ask about.")] = "pypi",
    data_dir: DataDir = None,
) -> None:
    """Explain whether a repository serves NAME==VERSION, step by step; exits 1 when it does not."""
    from packyard.cli.local import local_session
    from packyard.repository.policy.admin import explain

    name, sep, version = requirement.partition("==")
    if not sep or not name.strip() or not version.strip():
        fail(f"`{requirement}` is not NAME==VERSION.", hint="Write it as `packyard policy test django==3.2`.")
    with local_session(data_dir) as (_, session):
        served, lines = explain(session, repo, name.strip(), version.strip())
    for line in lines:
        out.print(f"  {line}", soft_wrap=True)
    verdict = "served" if served else "NOT served"
    out.print(f"{name.strip()}=={version.strip()} is {verdict} by repository `{repo}`.")
    if not served:
        raise typer.Exit(1)
