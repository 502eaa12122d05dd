"""What a caller may do to a content item, shared by the Connect API and the web pages: one set of checks (every
change passes `content.check_write`), one set of effects (a runtime change reaches the running processes, a
variable change restarts them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session

from packyard.publishing import content as contents
from packyard.publishing import variables
from packyard.publishing.deploy import changes
from packyard.publishing.deploy.tasks import Snapshot, Task, deploy_log
from packyard.publishing.errors import ActiveBundle, NotFound, PublishingError
from packyard.publishing.models import Content
from packyard.publishing.runtime.process import AppProcess, read_log_tail
from packyard.publishing.users import Caller

if TYPE_CHECKING:
    from packyard.context import AppContext

T = TypeVar("T")


async def in_thread(context: AppContext, work: Callable[[Session], T]) -> T:
    """Run `work(session)` in one transaction off the event loop."""

    def run() -> T:
        with context.db.session() as session:
            return work(session)

    return await asyncio.to_thread(run)


async def patch(context: AppContext, caller: Caller, guid: str, body: Any) -> Content:
    """Change a content's fields and runtime settings (owner or admin); new settings apply to its processes now."""

    def work(session: Session) -> Content:
        content = contents.patch(session, caller, contents.get(session, guid), body, context.settings.scheduler)
        session.flush()
        return content

    content = await in_thread(context, work)
    context.deployer.configure(content)  # a change made with the CLI comes through the change log instead
    return content


async def set_variables(
    context: AppContext, caller: Caller, guid: str, edits: list[tuple[str, str | None]]
) -> list[str]:
    """Set (or, for a None value, delete) variables checked by `variables.validate`; the content's processes
    start again with them, as on Connect. Returns every name the content now has."""
    vault = context.vault

    def work(session: Session) -> list[str]:
        content = contents.writable(session, caller, guid)
        if edits:  # every node serving it starts it again too
            changes.announce(session, changes.VARIABLES, guid, context.deployer.node)
        return variables.apply(session, vault, content.id, edits)

    names = await in_thread(context, work)
    if edits:
        await context.deployer.restart(guid, "its environment variables changed")
    return names


async def variable_names(context: AppContext, caller: Caller, guid: str) -> list[str]:
    return await in_thread(context, lambda s: variables.names(s, contents.owned(s, caller, guid).id))


async def delete_bundle(context: AppContext, caller: Caller, guid: str, bundle_id: Any) -> int:
    """Delete a bundle other than the active one; its draft stops and its files leave the disk, so
    `/content/<guid>/_bundle<id>/` answers 404. Returns its id."""

    def work(session: Session) -> int:
        content = contents.writable(session, caller, guid)
        bundle = contents.get_bundle(session, content, bundle_id)
        if content.bundle_id == bundle.id:
            raise ActiveBundle(f"Bundle {bundle.id} is active and cannot be deleted; activate another first.")
        if content.draft_bundle_id == bundle.id:
            content.draft_bundle_id = None
        session.delete(bundle)
        changes.announce(session, changes.BUNDLE_DELETED, guid, context.deployer.node, bundle.id)
        return bundle.id

    number = await in_thread(context, work)
    await context.deployer.discard_bundle(guid, number)
    return number


def bundle_to_deploy(session: Session, caller: Caller, guid: str, bundle_id: Any) -> int:
    """The bundle a deploy names, or the newest when it names none (rsconnect's `deploy` after an upload)."""
    content = contents.writable(session, caller, guid)
    if bundle_id is None:
        latest = contents.bundles(session, content)
        if not latest:
            raise PublishingError(f"Content `{guid}` has no bundles; upload one first.")
        return latest[0].id
    return contents.get_bundle(session, content, bundle_id).id


async def deploy(
    context: AppContext, caller: Caller, guid: str, bundle_id: Any, activate: bool = True, build_only: bool = False
) -> tuple[Task, int]:
    """Start the deploy task of a bundle: activating an older one is a rollback, the same task rsconnect runs."""
    number = await in_thread(context, lambda s: bundle_to_deploy(s, caller, guid, bundle_id))
    task = await context.deployer.start_deploy(guid, number, activate and not build_only, build_only)
    return task, number


async def task_of(context: AppContext, guid: str, task_id: str) -> Task | Snapshot:
    """A deploy task of this content (finished ones are kept for an hour), run on this node or another; NotFound
    otherwise."""
    task = await context.tasks.get(task_id)
    if task.content_guid != guid:
        raise NotFound(f"Content `{guid}` has no task `{task_id}`; finished tasks are kept for an hour.")
    return task


@dataclass
class Logs:
    app: list[str]
    deploy: list[str]


async def logs(context: AppContext, guid: str, lines: int) -> Logs:
    """The tails of the app's log on this node and of the deploy tasks from the database (any node's); the caller's
    right to read them is checked before."""
    app = await asyncio.to_thread(read_log_tail, context.deployer.log_path(guid), lines)
    return Logs(app=app, deploy=await in_thread(context, lambda s: deploy_log(s, guid, lines)))


def processes(context: AppContext, guid: str) -> list[AppProcess]:
    """The content's running processes (its pool's, then a draft's)."""
    return context.supervisor.processes(guid)
