"""API tokens (the server keeps each token's `jti` and grants, never the token itself), identity federation's trust
rules and spent identity tokens, and device authorizations in progress."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from packyard.db import Base, UTCDateTime, utcnow


class Token(Base):
    __tablename__ = "tokens"

    jti: Mapped[str] = mapped_column(String(36), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    scopes: Mapped[str] = mapped_column(Text)  # comma-separated
    sources: Mapped[str] = mapped_column(Text, default="")  # comma-separated names or "*"
    repos: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TrustRule(Base):
    """Identity federation: tokens from `issuer`, for `audience`, whose claims match `claims` (JSON object of exact
    values), are exchanged at `/__api__/token` for a short-lived token that may upload to one source."""

    __tablename__ = "trust_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(String(500))
    audience: Mapped[str] = mapped_column(String(500))
    claims: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SpentToken(Base):
    """An identity token already exchanged (sha256 of its issuer and `jti`), kept until it expires: a replay
    is refused."""

    __tablename__ = "spent_tokens"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class DeviceRequest(Base):
    """A device authorization started for posit-keyring: the PKCE challenge it must answer, by the sha256 of the
    provider's device code."""

    __tablename__ = "device_requests"

    device_code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    code_challenge: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
