"""Sources hold packages; repositories serve sources in priority order; simple pages are stored rendered."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from packyard.db import Base, UTCDateTime, utcnow


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    # Mirrors (`pypi`, `curated-pypi`): the upstream simple index; None follows `[mirror] upstream`.
    upstream: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Repository(Base):
    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    authenticated: Mapped[bool] = mapped_column(Boolean, default=False)
    # Groups whose members may read it when it is authenticated (newline-separated names); `packyard repo edit
    # --groups`. A token exchanged from an identity token gets `repos:read` for these.
    reader_groups: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    subscriptions: Mapped[list[Subscription]] = relationship(
        order_by="Subscription.priority", lazy="selectin", cascade="all, delete-orphan"
    )


class Subscription(Base):
    """A repository serves a source; a lower `priority` number wins a name."""

    __tablename__ = "subscriptions"

    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id"), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), primary_key=True)
    priority: Mapped[int] = mapped_column(Integer)

    source: Mapped[Source] = relationship(lazy="joined")


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("source_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))  # normalized (PEP 503)
    display_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    files: Mapped[list[DistFile]] = relationship(back_populates="project", lazy="select")


class DistFile(Base):
    """One wheel or sdist; its bytes live in the blob store under `sha256`."""

    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("source_id", "filename"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    version: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(300))
    packagetype: Mapped[str] = mapped_column(String(20))
    python_version: Mapped[str] = mapped_column(String(100), default="")
    requires_python: Mapped[str | None] = mapped_column(String(200), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    blake2_256: Mapped[str] = mapped_column(String(64))
    md5: Mapped[str] = mapped_column(String(32))
    metadata_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signature_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    yanked_reason: Mapped[str] = mapped_column(Text, default="")
    # For mirrored files, the upstream's upload time (when it gave one): dated snapshots filter on it.
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    uploaded_by: Mapped[str] = mapped_column(String(200), default="")
    # Mirrored files: where the upstream serves them; the blob arrives on first request.
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Deleted files stay for the snapshots dated before their deletion.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    project: Mapped[Project] = relationship(back_populates="files", lazy="joined")


class CoreMetadata(Base):
    """A wheel's METADATA, served as `<file>.metadata`; small, derived, and read on every resolve."""

    __tablename__ = "core_metadata"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class MirrorPage(Base):
    """What a mirror last learned of one upstream project page, so it revalidates instead of refetching."""

    __tablename__ = "mirror_pages"

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    found: Mapped[bool] = mapped_column(Boolean)
    etag: Mapped[str] = mapped_column(Text, default="")
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BlockRule(Base):
    """Hide a project, or the versions matching a specifier, from one repository or (repository None) all."""

    __tablename__ = "block_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int | None] = mapped_column(ForeignKey("repositories.id"), nullable=True)
    project: Mapped[str] = mapped_column(String(200), index=True)  # normalized
    specifier: Mapped[str] = mapped_column(String(200), default="")  # empty: every version
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CuratedEntry(Base):
    """One line of a curated source's allowlist: a project and the versions of it that are served."""

    __tablename__ = "curated_entries"

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), primary_key=True)
    project: Mapped[str] = mapped_column(String(200), primary_key=True)  # normalized
    specifier: Mapped[str] = mapped_column(Text, default="")  # empty: every version


class SimplePage(Base):
    """A project page (or the root, `project == ""`) rendered when its sources change, served as stored."""

    __tablename__ = "simple_pages"

    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id"), primary_key=True)
    project: Mapped[str] = mapped_column(String(200), primary_key=True)
    html: Mapped[bytes] = mapped_column(LargeBinary)
    json: Mapped[bytes] = mapped_column(LargeBinary)
    etag: Mapped[str] = mapped_column(String(64))
    serial: Mapped[int] = mapped_column(Integer)
    # Root pages list every name, so a new project marks them stale and the server re-renders them at
    # most twice a second (`indexer.render_stale_roots`) instead of once per upload.
    stale: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
