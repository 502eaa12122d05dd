"""Content environment variables: write-only through the API, encrypted at rest with AES-256-GCM."""

from __future__ import annotations

import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from packyard.publishing.errors import PublishingError
from packyard.publishing.models import ContentVariable

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Set by Packyard for every process; content may not override them.
RESERVED = frozenset(
    {"PATH", "HOME", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CONNECT_SERVER", "CONNECT_CONTENT_GUID"}
)


class Vault:
    """Encrypts each value with a fresh nonce; the content id and name are bound as associated data, so a
    value copied to another variable's row does not decrypt."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, content_id: int, name: str, value: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, value.encode(), f"{content_id}:{name}".encode())

    def open(self, content_id: int, name: str, sealed: bytes) -> str:
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], f"{content_id}:{name}".encode()).decode()
        except InvalidTag as exc:
            raise PublishingError(
                f"Variable `{name}` cannot be decrypted: the encryption key changed. Set it again "
                "(`rsconnect deploy ... -E NAME=VALUE`), or restore the data directory's `encryption-key`."
            ) from exc


def validate(items: object) -> list[tuple[str, str | None]]:
    """The PATCH body: `[{"name": ..., "value": ...}]`; a null value deletes the variable."""
    if not isinstance(items, list):
        raise PublishingError('Send a JSON array of variables, e.g. [{"name": "FOO", "value": "bar"}].')
    changes: list[tuple[str, str | None]] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise PublishingError(f'Each variable is an object with a string "name"; got {item!r}.')
        name, value = item["name"], item.get("value")
        if not _NAME.match(name):
            raise PublishingError(
                f"Variable name {name!r} is not valid; use letters, digits and `_`, not starting with a digit."
            )
        if name in RESERVED:
            raise PublishingError(f"Variable `{name}` is set by Packyard and cannot be changed; pick another name.")
        if value is not None and not isinstance(value, str):
            raise PublishingError(f"Variable `{name}` has the value {value!r}; send a string, or null to delete it.")
        changes.append((name, value))
    return changes


def apply(session: Session, vault: Vault, content_id: int, changes: list[tuple[str, str | None]]) -> list[str]:
    """Set and delete variables; returns every name the content now has."""
    for name, value in changes:
        session.execute(
            delete(ContentVariable).where(ContentVariable.content_id == content_id, ContentVariable.name == name)
        )
        if value is not None:
            session.add(ContentVariable(content_id=content_id, name=name, value=vault.seal(content_id, name, value)))
    session.flush()
    return names(session, content_id)


def names(session: Session, content_id: int) -> list[str]:
    query = select(ContentVariable.name).where(ContentVariable.content_id == content_id).order_by(ContentVariable.name)
    return list(session.scalars(query))


def decrypted(session: Session, vault: Vault, content_id: int) -> dict[str, str]:
    """Values for a process about to start: the only place they are decrypted."""
    rows = session.scalars(select(ContentVariable).where(ContentVariable.content_id == content_id))
    return {row.name: vault.open(content_id, row.name, row.value) for row in rows}
