"""API tokens: the server keeps each token's `jti` and grants, never the token itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
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
