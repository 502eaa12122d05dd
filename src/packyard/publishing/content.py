"""Content items and their bundles: the writes behind the Connect API, and the JSON it returns."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.changelog.events import record
from packyard.config import SchedulerSettings, ServerSettings
from packyard.db import utcnow
from packyard.publishing import permissions
from packyard.publishing.bundles.manifest import APP_MODES
from packyard.publishing.errors import ContentLocked, Forbidden, NameInUse, NotFound, PublishingError
from packyard.publishing.models import Bundle, Content, User
from packyard.publishing.runtime import limits
from packyard.publishing.users import Caller, require_publisher

_NAME = re.compile(r"^[A-Za-z0-9_-]{3,64}$")
ACCESS_TYPES = ("acl", "logged_in", "all")
# Fields a PATCH may change, and the type each takes.
EDITABLE: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "title": (str, type(None)),
    "description": str,
    "access_type": str,
    "default_py_environment_management": (bool, type(None)),
    "locked": bool,
    "locked_message": str,
}
# The fields a PATCH may change on locked content: what unlocks it, or says why it is locked.
LOCK_FIELDS = frozenset({"locked", "locked_message"})


def content_json(content: Content, owner_guid: str, server: ServerSettings, app_role: str = "owner") -> dict[str, Any]:
    """Connect's v1 content object: what rsconnect reads, plus what `content search` prints."""
    base = server.address.rstrip("/")
    # On its own origin when `[server] content_address` is set; the main origin would only redirect there.
    served = (server.content_address or server.address).rstrip("/")
    return {
        "guid": content.guid,
        "name": content.name,
        "title": content.title,
        "description": content.description,
        "access_type": content.access_type,
        "locked": content.locked,
        "locked_message": content.locked_message,
        "created_time": iso(content.created_at),
        "last_deployed_time": iso(content.last_deployed_at),
        "bundle_id": str(content.bundle_id) if content.bundle_id is not None else None,
        "app_mode": content.app_mode,
        "content_category": "",
        "parameterized": False,
        "cluster_name": "Local",
        "image_name": None,
        "r_version": None,
        "py_version": content.py_version,
        "quarto_version": None,
        "r_environment_management": None,
        "default_py_environment_management": content.py_environment_management,
        "py_environment_management": content.py_environment_management,
        **{name: getattr(content, name) for name in limits.FIELDS},
        "run_as": None,
        "run_as_current_user": False,
        "owner_guid": owner_guid,
        "content_url": f"{served}/content/{content.guid}/",
        "dashboard_url": f"{base}/connect/#/apps/{content.guid}",
        "app_role": app_role,
        "id": str(content.id),
    }


def bundle_json(bundle: Bundle, content: Content) -> dict[str, Any]:
    return {
        "id": str(bundle.id),
        "content_guid": content.guid,
        "created_time": iso(bundle.created_at),
        "cluster_name": "Local",
        "image_name": None,
        "r_version": None,
        "py_version": bundle.py_version,
        "quarto_version": None,
        "active": content.bundle_id == bundle.id,
        "size": bundle.size,
        "metadata": json.loads(bundle.metadata_json or "{}"),
    }


def iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def owner_guid(session: Session, content: Content) -> str:
    return session.scalar(select(User.guid).where(User.id == content.owner_id)) or ""


def create(session: Session, caller: Caller, body: Any) -> Content:
    require_publisher(caller)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise PublishingError('Send a JSON object with a string "name", e.g. {"name": "my-api"}.')
    name = body["name"]
    _check_name(name)
    taken = select(Content.id).where(Content.name == name, Content.owner_id == caller.user_id)
    if session.scalar(taken) is not None:
        raise NameInUse(f"You already have content named `{name}`; pick another name or update that content.")
    content = Content(guid=str(uuid.uuid4()), name=name, owner_id=caller.user_id, title=body.get("title"))
    session.add(content)
    session.flush()
    return content


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise PublishingError(
            f"Content name {name!r} is not valid; use 3 to 64 letters, digits, `_` or `-` "
            "(rsconnect derives one from the directory name)."
        )


def get(session: Session, guid: str) -> Content:
    content = session.scalar(select(Content).where(Content.guid == guid))
    if content is None:
        raise NotFound(f"There is no content `{guid}`; `rsconnect content search` lists what you can see.")
    return content


def get_by_id(session: Session, content_id: str) -> Content:
    content = session.get(Content, int(content_id)) if content_id.isdigit() else None
    if content is None:
        raise NotFound(f"There is no content with id {content_id!r}.")
    return content


def viewable(session: Session, caller: Caller, guid: str) -> Content:
    """The content, if the caller may see it; Forbidden otherwise."""
    content = get(session, guid)
    if not permissions.can_view(caller, content, permissions.audience(session, content)):
        raise Forbidden(f"User `{caller.username}` may not see content `{guid}`; ask its owner to share it with you.")
    return content


def owned(session: Session, caller: Caller, guid: str) -> Content:
    """The content, if the caller may read what its owner reads (its bundles, logs, variable names, permissions):
    its owner, a collaborator or an administrator; Forbidden otherwise. A change goes through `writable`."""
    content = get(session, guid)
    check_owner(session, caller, content)
    return content


def writable(session: Session, caller: Caller, guid: str) -> Content:
    """The content, if the caller may change it now (`check_write`)."""
    content = get(session, guid)
    check_write(session, caller, content)
    return content


def check_write(session: Session, caller: Caller, content: Content, lock_only: bool = False) -> None:
    """Every change to a content item passes here, from the API and the pages alike: an upload, a deploy or
    rollback, its settings, variables, access and lock, a bundle's or its own deletion. The caller's role must
    publish now (a publisher demoted to viewer keeps owning their content, but changes none of it), the caller
    must own the content, collaborate on it or be an administrator, and locked content takes only `lock_only`
    changes (PATCH of `locked` and `locked_message`)."""
    if not caller.can_publish:
        raise Forbidden(
            f"User `{caller.username}` has role `{caller.role}`, which cannot publish or change content "
            f"(`{content.guid}`); an administrator can run `packyard user set-role {caller.username} publisher`."
        )
    check_owner(session, caller, content)
    if content.locked and not lock_only:
        why = f": {content.locked_message.strip().rstrip('.')}" if content.locked_message.strip() else ""
        raise ContentLocked(
            f"Content `{content.guid}` is locked{why}. It takes no deploys or changes until its owner or an "
            f'administrator unlocks it: `PATCH /__api__/v1/content/{content.guid}` with `{{"locked": false}}`.'
        )


def can_change(session: Session, caller: Caller, content: Content) -> bool:
    """Whether the caller owns the content, collaborates on it or is an administrator (the pages show the
    owner's tabs then)."""
    return permissions.can_change(caller, content, permissions.audience(session, content))


def check_owner(session: Session, caller: Caller, content: Content) -> None:
    if not can_change(session, caller, content):
        raise Forbidden(
            f"User `{caller.username}` is not an owner or collaborator of content `{content.guid}`; its owner can "
            "make you a collaborator. Deploy with `--new` to make your own copy."
        )


def check_deletable(caller: Caller, content: Content) -> None:
    """Deleting a content is for its owner and administrators, not its collaborators."""
    if not (caller.is_admin or caller.user_id == content.owner_id):
        raise Forbidden(
            f"User `{caller.username}` does not own content `{content.guid}`; only its owner or an administrator "
            "can delete it."
        )


def visible(session: Session, caller: Caller, name: str | None = None) -> list[Content]:
    query = select(Content).order_by(Content.id)
    if name is not None:
        query = query.where(Content.name == name)
    if not caller.is_admin:
        mine = (Content.owner_id == caller.user_id) | (Content.access_type != "acl")
        query = query.where(mine | permissions.shared_with(caller))
    return list(session.scalars(query))


def describe(session: Session, caller: Caller, content: Content, server: ServerSettings) -> dict[str, Any]:
    """The content's JSON as the caller sees it: its owner's guid and the caller's `app_role`."""
    role = permissions.app_role(caller, content, permissions.audience(session, content))
    return content_json(content, owner_guid(session, content), server, role)


def patch(session: Session, caller: Caller, content: Content, body: Any, defaults: SchedulerSettings) -> Content:
    lock_only = isinstance(body, dict) and bool(body) and body.keys() <= LOCK_FIELDS
    check_write(session, caller, content, lock_only)
    if not isinstance(body, dict):
        raise PublishingError('Send a JSON object of fields to change, e.g. {"title": "My API"}.')
    runtime = {key: value for key, value in body.items() if key in limits.FIELDS}
    if limits.apply(content, runtime, defaults):
        runtime_changed(session, content)
    for key, value in body.items():
        kind = EDITABLE.get(key)
        if kind is None:
            continue  # Connect ignores fields it does not let you set; so do we
        if not isinstance(value, kind):
            raise PublishingError(f"Field `{key}` has the value {value!r}, which is not valid for it.")
        if key == "name" and isinstance(value, str):
            _check_name(value)
            content.name = value
        elif key == "access_type" and isinstance(value, str):
            if value not in ACCESS_TYPES:
                raise PublishingError(f"`access_type` {value!r} is not known; use one of {', '.join(ACCESS_TYPES)}.")
            if content.access_type != value:
                record(session, "content-access", detail=f"{content.guid} {value}")
            content.access_type = value
        elif key == "default_py_environment_management" and isinstance(value, bool):
            content.py_environment_management = value
        else:
            setattr(content, key, value)
    return content


def runtime_changed(session: Session, content: Content) -> None:
    """Tell the server (this process or, for the CLI, the running one) to apply the content's new settings."""
    record(session, "content-runtime", detail=content.guid)


def add_bundle(
    session: Session, content: Content, sha256: str, size: int, seconds: float, metadata: dict[str, Any]
) -> Bundle:
    bundle = Bundle(
        content_id=content.id,
        sha256=sha256,
        size=size,
        upload_seconds=seconds,
        metadata_json=json.dumps(metadata),
    )
    session.add(bundle)
    session.flush()
    return bundle


def get_bundle(session: Session, content: Content, bundle_id: Any) -> Bundle:
    bundle = session.get(Bundle, int(bundle_id)) if str(bundle_id).isdigit() else None
    if bundle is None or bundle.content_id != content.id:
        raise NotFound(
            f"Content `{content.guid}` has no bundle {bundle_id!r}; "
            f"`GET /__api__/v1/content/{content.guid}/bundles` lists them."
        )
    return bundle


def bundles(session: Session, content: Content) -> list[Bundle]:
    query = select(Bundle).where(Bundle.content_id == content.id).order_by(Bundle.id.desc())
    return list(session.scalars(query))


def activated(session: Session, content: Content, bundle: Bundle) -> None:
    content.bundle_id = bundle.id
    if content.draft_bundle_id == bundle.id:
        content.draft_bundle_id = None
    content.app_mode = bundle.app_mode or content.app_mode
    content.py_version = bundle.py_version
    content.last_deployed_at = utcnow()


def app_mode_ordinal(mode: str) -> int:
    return APP_MODES.get(mode, 0)
