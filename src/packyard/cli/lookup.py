"""Ids as people type them: a unique prefix of a GUID or token id, or a content's name where it is unique."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.cli.output import fail


def pick(kind: str, given: str, candidates: Iterable[tuple[str, str]], listing: str, key: str = "id") -> str:
    """The one id that `given` names among `(id, label)` candidates: the id itself, a prefix of one, or a label
    (a content's name). None or several is an error that names them and the command that lists them all."""
    given = given.strip()
    found = dict(candidates)
    if given in found:
        return given
    matches = {id_: label for id_, label in found.items() if given and (id_.startswith(given) or label == given)}
    if len(matches) == 1:
        return next(iter(matches))
    if not matches:
        fail(f"No {kind} with {key} `{given}`; `{listing}` shows them")
    shown = ", ".join(f"`{id_}`" + (f" ({label})" if label else "") for id_, label in sorted(matches.items()))
    fail(
        f"`{given}` matches {len(matches)} {kind}s: {shown}",
        hint="Give more characters of the id, or the whole id from `" + listing + "`.",
    )
    raise AssertionError  # unreachable; fail exits


def token_id(session: Session, given: str) -> str:
    from packyard.auth.models import Token

    return pick("token", given, ((jti, "") for jti in session.scalars(select(Token.jti))), "packyard token list")


def content_guid(session: Session, given: str) -> str:
    from packyard.publishing.models import Content

    rows = session.execute(select(Content.guid, Content.name))
    candidates = ((guid, name) for guid, name in rows)
    return pick("content", given, candidates, "packyard content list", key="GUID or name")
