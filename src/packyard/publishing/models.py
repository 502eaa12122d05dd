"""Users, groups and their API keys; content, who it is shared with, its bundles and environment variables; built
Python environments; deploy tasks and their output."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from packyard.db import Base, UTCDateTime, utcnow

ROLES = ("admin", "publisher", "viewer")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), unique=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str] = mapped_column(String(320), default="")
    role: Mapped[str] = mapped_column(String(20))
    locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # argon2id (signin.py); None: the user cannot sign in to the web pages, only use API keys.
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # `<issuer> <sub>` of a user made by an OpenID Connect sign-in; None for local users.
    oidc_subject: Mapped[str | None] = mapped_column(String(600), nullable=True, unique=True)


class WebSession(Base):
    """A signed-in browser. Only the sha256 of the cookie's token is kept, as for API keys."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # "main": Packyard's own pages; "content": the content origin (`[server] content_address`), which opens
    # content and nothing else.
    origin: Mapped[str] = mapped_column(String(20), default="main", server_default="main")


class ContentTicket(Base):
    """A single-use pass from a signed-in browser on the main origin to the content origin; only its sha256."""

    __tablename__ = "content_tickets"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class SignInFailure(Base):
    """Failed web sign-ins counted for one user name (`user:<name>`) or one client address (`address:<ip>`), and
    the lockout they earned; kept in the database so every node of a server sees the same count."""

    __tablename__ = "sign_in_failures"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApiKey(Base):
    """A user's API key. Only its sha256 is kept: keys are 192 random bits, so a slow hash buys nothing."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Content(Base):
    __tablename__ = "content"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    app_mode: Mapped[str] = mapped_column(String(40), default="unknown")
    # "acl": the owner, its permissions' principals and admins; "logged_in": any signed-in user; "all": anyone.
    access_type: Mapped[str] = mapped_column(String(20), default="acl")
    bundle_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the active bundle
    # The bundle deployed with `"activate": false`, which every node serves at `_bundle<id>/` (rsconnect verifies
    # a draft there, through whichever node the load balancer picks).
    draft_bundle_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    py_version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # None follows the server's `[python] environment_management`.
    py_environment_management: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # Runtime settings (runtime/limits.py); None follows the server's `[scheduler]` default.
    min_processes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_processes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_conns_per_process: Mapped[int | None] = mapped_column(Integer, nullable=True)
    load_factor: Mapped[float | None] = mapped_column(Float, nullable=True)
    idle_timeout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    init_timeout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    connection_timeout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    read_timeout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    memory_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # bytes
    process_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    open_files_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_deployed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Connect's content lock: no deploys or changes but unlocking (content.check_write); the message says why.
    locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    locked_message: Mapped[str] = mapped_column(Text, default="", server_default="")


class Group(Base):
    """A named set of users that content can be shared with."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # "local": an administrator keeps its members; "oidc": its members follow the provider at each sign-in.
    origin: Mapped[str] = mapped_column(String(20), default="local", server_default="local")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)


class ContentPermission(Base):
    """One principal, a user or a group, given a role on a content: `viewer`, or `owner` (a collaborator)."""

    __tablename__ = "content_permissions"
    __table_args__ = (
        UniqueConstraint("content_id", "user_id", name="uq_content_permissions_content_id_user_id"),
        UniqueConstraint("content_id", "group_id", name="uq_content_permissions_content_id_group_id"),
        CheckConstraint("(user_id IS NULL) <> (group_id IS NULL)", name="ck_content_permissions_one_principal"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_id: Mapped[int] = mapped_column(ForeignKey("content.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), nullable=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContentVariable(Base):
    """An environment variable of a content item, encrypted at rest (AES-256-GCM, nonce prepended)."""

    __tablename__ = "content_variables"

    content_id: Mapped[int] = mapped_column(ForeignKey("content.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class Bundle(Base):
    __tablename__ = "bundles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_id: Mapped[int] = mapped_column(ForeignKey("content.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    upload_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")  # git metadata sent with a multipart upload
    app_mode: Mapped[str | None] = mapped_column(String(40), nullable=True)  # from the manifest, once deployed
    py_version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    environment_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PythonEnvironment(Base):
    """A built environment, named by the sha256 of everything that decides its contents."""

    __tablename__ = "python_environments"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    python_version: Mapped[str] = mapped_column(String(40))
    python_path: Mapped[str] = mapped_column(Text)
    packages: Mapped[str] = mapped_column(Text)  # the normalized install list, one per line
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    build_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeployTask(Base):
    """A deploy task as any node reads it (`deploy/tasks.py`): written in batches by the node that runs it, whose
    `heartbeat_at` says it is still alive."""

    __tablename__ = "deploy_tasks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    content_guid: Mapped[str] = mapped_column(String(64), default="")
    node: Mapped[str] = mapped_column(String(300), default="")  # host:pid of the node running it
    line_count: Mapped[int] = mapped_column(Integer, default=0)  # lines written so far, with this row
    finished: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    code: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)


class DeployTaskLine(Base):
    """One line of a deploy task's output; `number` counts from 0, as rsconnect's `first` does."""

    __tablename__ = "deploy_task_lines"

    task_id: Mapped[str] = mapped_column(ForeignKey("deploy_tasks.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
