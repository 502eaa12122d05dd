"""`packyard trust`: identity federation's trust rules, which CI jobs may exchange their OIDC token at
`/__api__/token` for a short-lived token that uploads to one source."""

from __future__ import annotations

from typing import Annotated

import typer

from packyard.cli.local import DataDir
from packyard.cli.output import out, table

trust_app = typer.Typer(
    no_args_is_help=True,
    help="Trust rules: CI jobs whose OIDC token (issuer, audience, claims) may upload to a source, with no secret.",
)


@trust_app.command("create")
def create(
    source: Annotated[str, typer.Option(help="The `local-python` source the job may upload to.")],
    issuer: Annotated[
        str, typer.Option(help="The CI's OpenID issuer, e.g. `https://token.actions.githubusercontent.com`.")
    ],
    claim: Annotated[
        list[str] | None,
        typer.Option(help="`key=value` the job's token must carry exactly, e.g. `repository=org/app`; repeatable."),
    ] = None,
    audience: Annotated[
        str | None,
        typer.Option(help="The audience the job asks its token for.", show_default="`[server] address`"),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Let CI jobs whose token has these claims upload to a source, without a stored secret."""
    from packyard.auth.trust import create_rule
    from packyard.cli.local import local_session

    with local_session(data_dir) as (settings, session):
        rule = create_rule(session, source, issuer, claim or [], audience or settings.server.address.rstrip("/"))
    out.print(
        f"Rule {rule.id}: jobs of `{rule.issuer}` with {rule.claims_text} may upload to source `{rule.source}`, "
        f"with a token for the audience `{rule.audience}`.",
        soft_wrap=True,
    )


@trust_app.command("list")
def list_(data_dir: DataDir = None) -> None:
    """List trust rules."""
    from packyard.auth.trust import list_rules
    from packyard.cli.local import local_session

    with local_session(data_dir) as (_, session):
        rows = [[str(r.id), r.source, r.issuer, r.audience, r.claims_text] for r in list_rules(session)]
    table(["ID", "SOURCE", "ISSUER", "AUDIENCE", "CLAIMS"], rows)


@trust_app.command("remove")
def remove(
    rule_id: Annotated[int, typer.Argument(help="Rule id, from `packyard trust list`.")], data_dir: DataDir = None
) -> None:
    """Remove a trust rule; the next exchange it would have allowed is refused."""
    from packyard.auth.trust import remove_rule
    from packyard.cli.local import local_session

    with local_session(data_dir) as (_, session):
        rule = remove_rule(session, rule_id)
    out.print(f"Removed trust rule {rule_id} (`{rule.issuer}` to source `{rule.source}`).")
