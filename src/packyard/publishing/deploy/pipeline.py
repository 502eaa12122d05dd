"""Deploying a bundle: extract, build or reuse its environment, start it, check it answers, switch traffic.

Every step writes to the deploy task's output, which rsconnect prints as it polls. A failure before the
switch leaves the previous version serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from packyard import metrics
from packyard.config import Settings
from packyard.db import Database
from packyard.errors import PackyardError
from packyard.publishing import content as contents
from packyard.publishing import variables
from packyard.publishing.bundles.extract import extract_bundle, read_requirements
from packyard.publishing.bundles.manifest import FILE_APP_MODES, Manifest
from packyard.publishing.deploy import changes
from packyard.publishing.deploy.changes import Change
from packyard.publishing.deploy.launchers import LAUNCHERS, Launcher
from packyard.publishing.deploy.tasks import Task, Tasks
from packyard.publishing.environments.builder import BuiltEnvironment, Environments
from packyard.publishing.environments.interpreters import choose_interpreter, find_interpreters
from packyard.publishing.environments.plan import plan_install
from packyard.publishing.errors import BundleError, Busy, NotFound
from packyard.publishing.models import Bundle, Content
from packyard.publishing.runtime.limits import Limits, effective
from packyard.publishing.runtime.process import AppProcess, ProcessSpec, append_log
from packyard.publishing.runtime.supervisor import Supervisor
from packyard.publishing.sites.files import Site
from packyard.publishing.sites.registry import Sites
from packyard.publishing.sites.render import RUNTIME_PACKAGES
from packyard.publishing.variables import Vault
from packyard.storage import BlobStore

log = logging.getLogger("packyard.publishing")
# What Packyard's runtime packages do for content that renders (sites/render.py), for the deploy log's messages;
# an app's launcher says it by its name ("the WSGI API").
_RUNTIME_FOR = {"jupyter-static": "rendering the notebook", "quarto-static": "Quarto's Jupyter engine"}


@dataclass
class Prepared:
    """A bundle ready to start: where it is, what it is, and the environment it runs in."""

    content: Content
    bundle: Bundle
    root: Path
    manifest: Manifest
    environment: BuiltEnvironment | None  # None: content served as files that needs no Python
    variables: dict[str, str]


class Deployer:
    """Runs deploy tasks, and starts a content's active bundle when a request finds none running. It uses the
    parts the server holds (tasks, environments, supervisor, sites, vault); callers use those directly."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: BlobStore,
        tasks: Tasks,
        vault: Vault,
        environments: Environments,
        supervisor: Supervisor,
        sites: Sites,
        node: str = "",
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.tasks = tasks
        self.vault = vault
        self.environments = environments
        self.supervisor = supervisor
        self.sites = sites
        self.root = sites.apps
        self.node = node  # this server process, in the change-log events it writes (`changes.py`)
        self._locks: dict[str, asyncio.Lock] = {}
        self._running: set[asyncio.Task[None]] = set()
        # Changes other nodes made, per content, applied one at a time by one task per content (`follow`).
        self._changes: dict[str, list[Change]] = {}

    def content_dir(self, guid: str) -> Path:
        return self.root / guid

    def log_path(self, guid: str) -> Path:
        return self.content_dir(guid) / "app.log"

    def _lock(self, guid: str) -> asyncio.Lock:
        return self._locks.setdefault(guid, asyncio.Lock())

    # -- deploy tasks ---------------------------------------------------------------------------------

    async def start_deploy(self, guid: str, bundle_id: int, activate: bool, build_only: bool = False) -> Task:
        """A task that deploys a bundle; `build_only` is Connect's `content build`: the environment, no start."""
        self.content_dir(guid).mkdir(parents=True, exist_ok=True)
        task = await self.tasks.create(guid, self.content_dir(guid) / "deploy.log")
        self._background(self._run(task, guid, bundle_id, activate and not build_only, build_only))
        return task

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        job = asyncio.create_task(work)
        self._running.add(job)
        job.add_done_callback(self._running.discard)

    async def _run(self, task: Task, guid: str, bundle_id: int, activate: bool, build_only: bool = False) -> None:
        started = time.monotonic()
        metrics.DEPLOYS.labels("started").inc()
        try:
            async with self._lock(guid):
                await self._deploy(task, guid, bundle_id, activate, build_only, started)
            metrics.DEPLOYS.labels("succeeded").inc()
        except PackyardError as exc:
            metrics.DEPLOYS.labels("failed").inc()
            task.log(f"Error: {exc}")
            if not build_only:
                task.log("The previous version, if any, is still serving.")
            task.finish(1, str(exc))
        except Exception as exc:  # a bug must still end the task, or rsconnect polls for a day
            metrics.DEPLOYS.labels("failed").inc()
            log.exception("Deploy task %s failed", task.id)
            task.log(f"Error: internal error: {exc!r}")
            task.finish(1, f"Internal error: {exc!r}; the server log has the traceback.")

    async def _deploy(
        self, task: Task, guid: str, bundle_id: int, activate: bool, build_only: bool, started: float
    ) -> None:
        if activate and not build_only and self._promote(guid, bundle_id, task.log):
            self.sites.retire(guid)
            await asyncio.to_thread(self._mark_active, guid, bundle_id)
            task.log(f"Activating bundle {bundle_id}: its draft is running and answered, so traffic switches to it.")
            task.log(f"Activated in {time.monotonic() - started:.2f} s.")
            task.finish()
            return
        if activate and not build_only and await self._switch_site(guid, bundle_id):
            task.log(f"Activating bundle {bundle_id}: its files are ready, so /content/{guid}/ serves them now.")
            task.log(f"Activated in {time.monotonic() - started:.2f} s.")
            task.finish()
            return
        verb = "Building" if build_only else ("Deploying" if activate else "Deploying draft of")
        task.log(f"{verb} bundle {bundle_id} of content {guid}.")
        prepared = await self.prepare(guid, bundle_id, task.log)
        if build_only:
            task.log(f"Environment ready in {time.monotonic() - started:.2f} s.")
            task.finish()
            return
        if prepared.manifest.appmode in FILE_APP_MODES:
            return await self._deploy_site(task, prepared, activate, started)
        launcher = LAUNCHERS[prepared.manifest.appmode]
        task.log(f"Launching {launcher.name} `{prepared.manifest.entrypoint}` ...")
        start_began = time.monotonic()
        limits = self.limits(prepared.content)
        self.supervisor.configure(guid, limits)
        process = await self.supervisor.start(self._spec(prepared, launcher, draft=not activate), limits.init_timeout)
        start_seconds = time.monotonic() - start_began
        task.log(f"The app answered after {start_seconds:.2f} s (pid {process.pid}).")
        if activate:
            self.supervisor.activate(process, limits)
            self.sites.retire(guid)
            await asyncio.to_thread(self._mark_active, guid, bundle_id)
            task.log(f"Bundle {bundle_id} is active: /content/{guid}/ serves it.")
        else:
            self.supervisor.add_draft(process, limits)
            await asyncio.to_thread(self._mark_draft, guid, bundle_id)
            task.log(f"Draft running at /content/{guid}/_bundle{bundle_id}/; the active version is unchanged.")
        assert prepared.environment is not None
        timings = prepared.environment.timings
        stages = [f"upload {prepared.bundle.upload_seconds:.2f} s"]
        stages += [f"{name} {timings[name]:.2f} s" for name in ("resolve", "install") if name in timings]
        stages.append(f"start {start_seconds:.2f} s")
        source = "from the cache" if prepared.environment.cache_hit else "built"
        task.log(f"Deployed in {time.monotonic() - started:.2f} s ({', '.join(stages)}); environment {source}.")
        task.finish()

    # -- content served as files ----------------------------------------------------------------------------

    async def _deploy_site(self, task: Task, prepared: Prepared, activate: bool, started: float) -> None:
        site = await self._build_site(prepared, task.log)
        guid, bundle_id = prepared.content.guid, prepared.bundle.id
        if activate:
            await self._activate_site(site)
            task.log(f"Bundle {bundle_id} is active: /content/{guid}/ serves its files.")
        else:
            self.sites.add_draft(site)
            await asyncio.to_thread(self._mark_draft, guid, bundle_id)
            task.log(f"Draft served at /content/{guid}/_bundle{bundle_id}/; the active version is unchanged.")
        task.log(f"Deployed in {time.monotonic() - started:.2f} s.")
        task.finish()

    async def _build_site(self, prepared: Prepared, say: Callable[[str], None]) -> Site:
        environment = prepared.environment
        return await self.sites.build(
            prepared.content.guid,
            prepared.bundle.id,
            prepared.root,
            prepared.manifest,
            environment.python if environment is not None else None,
            {**prepared.variables, **self._connect_variables(prepared.content.guid)},
            say,
        )

    async def _switch_site(self, guid: str, bundle_id: int) -> bool:
        """Activate a bundle whose files an earlier deploy left ready (a verified draft, a rollback)."""
        site = self.sites.find(guid, bundle_id) or await asyncio.to_thread(self.sites.load, guid, bundle_id)
        if site is None:
            return False
        await self._activate_site(site)
        return True

    async def _activate_site(self, site: Site, mark: bool = True) -> None:
        self.sites.activate(site)
        await self.supervisor.stop_content(site.guid)  # it ran a process before: content may change kind
        if mark:  # not when following another node's activation, which it recorded
            await asyncio.to_thread(self._mark_active, site.guid, site.bundle_id)

    async def site(
        self, content: Content, bundle_id: int | None, admit: Callable[[], Awaitable[None]] | None = None
    ) -> Site | None:
        """The files a content (or, with `bundle_id`, its active bundle or current draft) serves; None when it runs
        a process instead, or when nothing serves that bundle (`running` says why). `admit` (the caller's access
        check) runs before anything slower than a lookup: a query, an extraction, a build."""
        site = self.sites.find(content.guid, bundle_id)
        if site is not None:
            return site
        if (
            content.bundle_id is not None
            and content.app_mode not in FILE_APP_MODES
            and bundle_id in (None, content.bundle_id)
        ):
            return None  # an app's request, the hot path: a process serves it, no query
        if admit is not None:
            await admit()
        # Nothing served here yet: decide on the row as it is now. The proxy's copy may be seconds old, and another
        # node may have activated a bundle or deployed a draft since; a superseded or deleted bundle's files may
        # still be on disk, but are not served.
        now = await asyncio.to_thread(self._current, content.guid)
        if now is None or (bundle_id is not None and bundle_id not in (now.bundle_id, now.draft_bundle_id)):
            return None
        content = now
        if bundle_id is not None and bundle_id == content.draft_bundle_id:
            if not await asyncio.to_thread(self._serves_files, content.guid, bundle_id):
                return None
            async with self._lock(content.guid):
                site = self.sites.find(content.guid, bundle_id)
                if site is None:
                    site = await asyncio.to_thread(self.sites.load, content.guid, bundle_id)
                if site is None:
                    site = await self._build_site(await self.prepare(content.guid, bundle_id, log.info), log.info)
                self.sites.add_draft(site)
                return site
        active = content.bundle_id
        if content.app_mode not in FILE_APP_MODES or active is None:
            return None
        async with self._lock(content.guid):  # after a restart: find the active bundle's files again
            site = self.sites.find(content.guid, None)
            if site is None:
                site = await asyncio.to_thread(self.sites.load, content.guid, active)
            if site is None:  # its files are gone (a data directory restored without apps/): build them again
                prepared = await self.prepare(content.guid, active, log.info)
                site = await self._build_site(prepared, log.info)
            self.sites.activate(site)
            return site if bundle_id is None or site.bundle_id == bundle_id else None

    async def prepare(self, guid: str, bundle_id: int, say: Callable[[str], None]) -> Prepared:
        """Extract the bundle and build or reuse its environment; nothing is started or switched."""
        content, bundle, previous_key, values = await asyncio.to_thread(self._load, guid, bundle_id)
        say(f"Bundle {bundle.id}: {bundle.size:,} bytes, uploaded in {bundle.upload_seconds:.2f} s.")
        root = self.content_dir(guid) / f"bundle-{bundle.id}"
        began = time.monotonic()
        manifest = await asyncio.to_thread(self._extract, bundle.sha256, root)
        say(f"Extracted in {time.monotonic() - began:.2f} s: app mode `{manifest.appmode}`.")
        if manifest.appmode not in LAUNCHERS and manifest.appmode not in FILE_APP_MODES:
            raise BundleError(
                f"manifest.json: `metadata.appmode` is `{manifest.appmode}`, which this server does not run yet; "
                f"it runs {', '.join(LAUNCHERS)} (`rsconnect deploy fastapi|flask|api|dash|shiny|streamlit|bokeh`) "
                f"and serves {', '.join(sorted(FILE_APP_MODES))} (`rsconnect deploy html|notebook|quarto|manifest`)."
            )
        if not manifest.needs_python:
            say("No Python environment: this content needs none.")
            await asyncio.to_thread(self._record_build, bundle.id, manifest, None, None)
            return Prepared(content, bundle, root, manifest, None, values)
        managed = self._managed(manifest, content, say)
        interpreters = await asyncio.to_thread(find_interpreters, self.settings.python.executables)
        interpreter = choose_interpreter(
            interpreters, manifest.python_version, manifest.requires_python, self.settings.python.exact_version_matching
        )
        say(
            f"Python {interpreter.version} ({interpreter.path}) for the bundle's {manifest.python_version or 'Python'}."
        )
        requirements = await asyncio.to_thread(read_requirements, root, manifest)
        runtime = RUNTIME_PACKAGES.get(manifest.appmode) or list(LAUNCHERS[manifest.appmode].packages)
        # Off the event loop: parsing the bundle's text and asking the interpreter for its packages both take time.
        plan = await asyncio.to_thread(
            plan_install,
            requirements,
            root,
            runtime,
            self.settings.python,
            interpreter,
            filename=manifest.package_file or "requirements.txt",
            runtime_for=_RUNTIME_FOR.get(manifest.appmode) or f"the {LAUNCHERS[manifest.appmode].name}",
        )
        for note in plan.notes:
            say(note)
        environment = await self.environments.prepare(
            interpreter, plan, managed=managed, log=say, previous=previous_key
        )
        if environment.cache_hit or not managed:
            say(environment.reason)  # a build logged its reason before uv's output
        seconds = environment.timings.get("total", 0.0)
        say(f"Environment {'ready' if environment.cache_hit or not managed else 'built'} in {seconds:.2f} s.")
        await asyncio.to_thread(self._record_build, bundle.id, manifest, interpreter.version, environment.key)
        return Prepared(content, bundle, root, manifest, environment, values)

    def _managed(self, manifest: Manifest, content: Content, say: Callable[[str], None]) -> bool:
        """Bundle setting, then content setting, then the server's: the seed's precedence."""
        if manifest.environment_management is not None:
            say(f"Environment management {'on' if manifest.environment_management else 'off'}: set by the bundle.")
            return manifest.environment_management
        if content.py_environment_management is not None:
            say(f"Environment management {'on' if content.py_environment_management else 'off'}: set on the content.")
            return content.py_environment_management
        return self.settings.python.environment_management

    def _connect_variables(self, guid: str) -> dict[str, str]:
        """What Connect sets for content code beside its own variables."""
        return {
            "CONNECT_SERVER": self.settings.server.address.rstrip("/") + "/",
            "CONNECT_CONTENT_GUID": guid,
            "RSTUDIO_PRODUCT": "CONNECT",
        }

    def url_prefix(self, guid: str, bundle_id: int | None = None) -> str:
        """The path a browser reaches a content at (a draft's with `bundle_id`), below the server's address (the
        content origin's, which has no path, when one is set)."""
        server = self.settings.server
        base = urlsplit(server.content_address or server.address).path.rstrip("/")
        return f"{base}/content/{guid}/" + (f"_bundle{bundle_id}/" if bundle_id is not None else "")

    def _promote(self, guid: str, bundle_id: int, say: Callable[[str], None]) -> bool:
        """Switch traffic to the running draft of `bundle_id`, unless it learnt the draft's URL when it started;
        True when that bundle serves now without a new start."""
        running = self.supervisor.find(guid, bundle_id)
        if running is None or running.spec.prefix in ("", self.url_prefix(guid)):
            return self.supervisor.promote(guid, bundle_id)
        say(
            f"Bundle {bundle_id}'s draft was told its URL {running.spec.prefix} when it started, so the bundle "
            f"starts again for {self.url_prefix(guid)}."
        )
        return False

    def _spec(self, prepared: Prepared, launcher: Launcher, draft: bool = False) -> ProcessSpec:
        guid = prepared.content.guid
        env = {**prepared.variables, **self._connect_variables(guid)}
        assert prepared.environment is not None
        prefix = ""
        if launcher.prefix_at_start:
            prefix = self.url_prefix(guid, prepared.bundle.id if draft else None)
        return ProcessSpec(
            guid=guid,
            bundle_id=prepared.bundle.id,
            kind=launcher.kind,
            entrypoint=prepared.manifest.entrypoint or "app",
            python=prepared.environment.python,
            cwd=prepared.root,
            env=env,
            log_path=self.log_path(guid),
            prefix=prefix,
            full_path=launcher.full_path,
        )

    # -- database steps, run in worker threads ------------------------------------------------------------

    def _extract(self, digest: str, root: Path) -> Manifest:
        """Unpack the bundle's archive, a local file for as long as the extraction takes."""
        with self.store.local_file(digest) as archive:
            return extract_bundle(
                archive,
                root,
                max_bytes=self.settings.bundle_max_size,
                max_entries=self.settings.publishing.bundle_max_entries,
            )

    def _load(self, guid: str, bundle_id: int) -> tuple[Content, Bundle, str | None, dict[str, str]]:
        with self.db.session() as session:
            content = contents.get(session, guid)
            bundle = contents.get_bundle(session, content, bundle_id)
            previous = None
            if content.bundle_id is not None:
                previous = session.scalar(select(Bundle.environment_key).where(Bundle.id == content.bundle_id))
            values = variables.decrypted(session, self.vault, content.id)
            return content, bundle, previous, values

    def _record_build(self, bundle_id: int, manifest: Manifest, py_version: str | None, key: str | None) -> None:
        with self.db.session() as session:
            bundle = session.get(Bundle, bundle_id)
            if bundle is not None:
                bundle.app_mode = manifest.appmode
                bundle.py_version = py_version
                bundle.environment_key = key

    def _has_bundle(self, guid: str, bundle_id: int) -> bool:
        query = select(Bundle.id).join(Content, Content.id == Bundle.content_id)
        with self.db.session() as session:
            return session.scalar(query.where(Content.guid == guid, Bundle.id == bundle_id)) is not None

    def _mark_active(self, guid: str, bundle_id: int) -> None:
        with self.db.session() as session:
            content = contents.get(session, guid)
            contents.activated(session, content, contents.get_bundle(session, content, bundle_id))
            changes.announce(session, changes.ACTIVATED, guid, self.node, bundle_id)

    def _mark_draft(self, guid: str, bundle_id: int) -> None:
        with self.db.session() as session:
            contents.get(session, guid).draft_bundle_id = bundle_id

    def _serves_files(self, guid: str, bundle_id: int) -> bool:
        """Whether a bundle is content served as files (a draft's mode is its bundle's, not yet the content's)."""
        query = select(Bundle.app_mode).join(Content, Content.id == Bundle.content_id)
        with self.db.session() as session:
            mode = session.scalar(query.where(Content.guid == guid, Bundle.id == bundle_id))
        return mode in FILE_APP_MODES

    def _current(self, guid: str) -> Content | None:
        """The content's row as the database has it now (another node may have changed its bundles)."""
        with self.db.session() as session:
            return session.scalar(select(Content).where(Content.guid == guid))

    # -- serving ------------------------------------------------------------------------------------------

    async def running(self, content: Content, bundle_id: int | None) -> AppProcess:
        """A process of the content (or of its draft `bundle_id`) with room for one more connection, counted in
        flight: give it back with `process.release()`. Waits while every process is full, and starts the active
        bundle when none runs (after a scale to zero or a server restart)."""
        guid = content.guid
        process = self.supervisor.acquire(guid, bundle_id)  # the common case: no await, no lock
        if process is None:
            process = await self.supervisor.wait_for(guid, bundle_id)
        if process is not None:
            return process
        if bundle_id is not None:
            # The proxy's copy of the row may be seconds old, and another node may have deployed, activated or
            # deleted the bundle since: what a `_bundle<id>/` URL starts is decided on the row as it is now. Only
            # this slow path (no process serving it here) pays the query.
            now = await asyncio.to_thread(self._current, guid)
            if now is not None and bundle_id == now.draft_bundle_id:
                await self._open_draft(guid, bundle_id)  # another node deployed it; rsconnect may verify it here
                process = await self.supervisor.wait_for(guid, bundle_id)
            if process is not None:
                return process
            if now is None or bundle_id != now.bundle_id:
                raise await self._not_served(guid, bundle_id)
            content = now
        else:  # starting from nothing costs far more than a query: start what the row says now, not seconds ago
            now = await asyncio.to_thread(self._current, guid)
            if now is None:
                raise NotFound(f"There is no content `{guid}`; `GET /__api__/v1/content` lists what you may see.")
            content = now
        await self._open(content)
        process = await self.supervisor.wait_for(guid)
        if process is None:
            raise Busy(f"Content `{guid}` was replaced or removed while this request waited; try again.", 1)
        return process

    async def _open_draft(self, guid: str, bundle_id: int) -> None:
        """Start the draft another node deployed, as that node did (its environment from the cache or built)."""
        async with self._lock(guid):
            if self.supervisor.find(guid, bundle_id) is not None:
                return
            prepared = await self.prepare(guid, bundle_id, _discard)
            launcher = LAUNCHERS.get(prepared.manifest.appmode)
            if launcher is None:
                return
            limits = self.limits(prepared.content)
            process = await self.supervisor.start(self._spec(prepared, launcher, draft=True), limits.init_timeout)
            self.supervisor.add_draft(process, limits)

    async def _not_served(self, guid: str, bundle_id: int) -> NotFound:
        """Why `/_bundle<id>/` serves nothing: only the active bundle and the current draft are served."""
        if not await asyncio.to_thread(self._has_bundle, guid, bundle_id):
            return NotFound(
                f"Content `{guid}` has no bundle {bundle_id}: it was deleted, or never uploaded. "
                f"`/content/{guid}/` serves its active bundle."
            )
        return NotFound(
            f"Bundle {bundle_id} of content `{guid}` is neither its active bundle nor its current draft, so "
            f"`/content/{guid}/_bundle{bundle_id}/` serves nothing; its owner can deploy it again as a draft "
            f'(`POST /__api__/v1/content/{guid}/deploy` with `{{"bundle_id": "{bundle_id}", "activate": false}}`) '
            "or roll back to it."
        )

    async def _open(self, content: Content) -> None:
        """Give the content a pool for its active bundle, whose environment is checked (or built) first."""
        if content.bundle_id is None:
            raise NotFound(f"Content {content.guid} has no active bundle yet; deploy one with `rsconnect deploy`.")
        async with self._lock(content.guid):
            if self.supervisor.pool(content.guid) is not None:
                return
            prepared = await self.prepare(content.guid, content.bundle_id, _discard)
            self.supervisor.configure(content.guid, self.limits(content))
            self.supervisor.open(self._spec(prepared, LAUNCHERS[prepared.manifest.appmode]))

    async def restart(self, guid: str, why: str) -> None:
        """Start the content's processes again with what it has now (its variables): a new pool takes the next
        requests and the old processes stop once their requests in flight finish. Content with no pool yet
        (none since the server started) reads its variables when it first starts, so there is nothing to do."""
        if self.supervisor.pool(guid) is None:
            return
        async with self._lock(guid):
            pool = self.supervisor.pool(guid)
            if pool is None:
                return
            try:
                prepared = await self.prepare(guid, pool.bundle_id, _discard)
            except PackyardError as exc:  # the running processes keep serving, with what they had
                append_log(self.log_path(guid), pool.bundle_id, [f"Could not restart ({why}): {exc}"])
                return
            append_log(self.log_path(guid), pool.bundle_id, [f"Restarting: {why}."])
            had = len(pool.processes)
            fresh = self.supervisor.open(self._spec(prepared, LAUNCHERS[prepared.manifest.appmode]))
            if had:  # it was serving: have a process ready rather than make the next visitor wait for one
                fresh.warm(why)

    async def warm_up(self) -> None:
        """At server start: open the pools of content that keeps processes running (`min_processes`)."""

        def load() -> list[Content]:
            with self.db.session() as session:
                query = select(Content).where(Content.bundle_id.is_not(None), Content.app_mode.in_(list(LAUNCHERS)))
                return list(session.scalars(query))

        for content in await asyncio.to_thread(load):
            if self.limits(content).min_processes > 0:
                try:
                    await self._open(content)
                except PackyardError as exc:
                    log.warning("Content %s keeps %s processes, but could not start: %s", content.guid,
                                self.limits(content).min_processes, exc)  # fmt: skip

    def limits(self, content: Content) -> Limits:
        return effective(content, self.settings.scheduler)

    def configure(self, content: Content) -> None:
        """Apply the content's runtime settings to its running processes."""
        self.supervisor.configure(content.guid, self.limits(content))

    async def reconfigure(self, guid: str) -> None:
        """Read the content's runtime settings again (the change log says they changed) and apply them."""

        def load() -> Content | None:
            with self.db.session() as session:
                try:
                    return contents.get(session, guid)
                except NotFound:
                    return None

        content = await asyncio.to_thread(load)
        if content is not None:
            self.configure(content)

    async def discard_bundle(self, guid: str, bundle_id: int) -> None:
        """A deleted bundle: its draft (process or files) stops serving and its folders leave the disk."""
        async with self._lock(guid):  # not while a deploy of the content is extracting or starting
            self.sites.discard(guid, bundle_id)
            await self.supervisor.stop_draft(guid, bundle_id)
            for folder in (self.content_dir(guid) / f"bundle-{bundle_id}", self.sites.output_dir(guid, bundle_id)):
                await asyncio.to_thread(shutil.rmtree, folder, True)

    async def remove(self, guid: str) -> None:
        self.sites.retire(guid)
        await self.supervisor.stop_content(guid)
        await asyncio.to_thread(shutil.rmtree, self.content_dir(guid), True)

    # -- following what other nodes change ---------------------------------------------------------------

    def follow(self, change: Change) -> None:
        """Act on a change another node made to a content this node serves (the change-log follower calls this):
        in the background, one change at a time per content, so the follower is never held up."""
        if change.node == self.node or not change.guid:
            return  # this node made it, and its pipeline acted already
        serving = self.supervisor.pool(change.guid) is not None or self.sites.find(change.guid) is not None
        if not serving and change.kind in (changes.ACTIVATED, changes.VARIABLES):
            return  # nothing runs here: its first request starts what the database says then
        queue = self._changes.get(change.guid)
        if queue is not None:  # a task for this content is running; it takes this one next
            queue.append(change)
            return
        self._changes[change.guid] = [change]
        self._background(self._follow_content(change.guid))

    async def _follow_content(self, guid: str) -> None:
        queue = self._changes[guid]
        try:
            while queue:
                change = queue.pop(0)
                try:
                    await self._apply(change)
                except Exception as exc:  # the next change still applies; the old version keeps serving
                    log.exception("Could not follow %s of content %s", change.kind, guid)
                    with contextlib.suppress(OSError):  # its folder may be gone
                        append_log(
                            self.log_path(guid), change.bundle_id or 0, [f"Could not follow {change.kind}: {exc}"]
                        )
        finally:
            del self._changes[guid]

    async def _apply(self, change: Change) -> None:
        guid = change.guid
        if change.kind == changes.DELETED:
            await self.remove(guid)
        elif change.kind == changes.BUNDLE_DELETED and change.bundle_id is not None:
            await self.discard_bundle(guid, change.bundle_id)
        elif change.kind == changes.VARIABLES:
            await self.restart(guid, "its environment variables changed (on another node)")
        elif change.kind == changes.ACTIVATED:
            await self._switch_to_active(guid)

    async def _switch_to_active(self, guid: str) -> None:
        """Serve the bundle another node activated, as its own deploy would: prepare it (extract it, find or build
        its environment), start a process and switch to it once it answers; the old processes drain. Nothing
        when this node serves it already or serves nothing of the content."""
        content = await asyncio.to_thread(self._content_or_none, guid)
        if content is None:
            return await self.remove(guid)
        target = content.bundle_id
        if target is None or self._serves(guid, target):
            return
        async with self._lock(guid):
            pool, site = self.supervisor.pool(guid), self.sites.find(guid)
            if (pool is None and site is None) or self._serves(guid, target):
                return  # stopped meanwhile, or a request here started the new bundle already
            began = time.monotonic()
            prepared = await self.prepare(guid, target, _discard)
            if prepared.manifest.appmode in FILE_APP_MODES:
                built = self.sites.find(guid, target) or await asyncio.to_thread(self.sites.load, guid, target)
                await self._activate_site(built or await self._build_site(prepared, _discard), mark=False)
            else:
                limits = self.limits(content)
                self.supervisor.configure(guid, limits)
                spec = self._spec(prepared, LAUNCHERS[prepared.manifest.appmode])
                if pool is not None and pool.processes:  # it was serving: the new process answers before the switch
                    self.supervisor.activate(await self.supervisor.start(spec, limits.init_timeout), limits)
                else:
                    self.supervisor.open(spec)
                self.sites.retire(guid)
            seconds = time.monotonic() - began
            note = f"Bundle {target} was activated on another node; serving it here after {seconds:.2f} s."
            append_log(self.log_path(guid), target, [note])

    def _serves(self, guid: str, bundle_id: int) -> bool:
        pool, site = self.supervisor.pool(guid), self.sites.find(guid)
        return (pool is not None and pool.bundle_id == bundle_id) or (site is not None and site.bundle_id == bundle_id)

    def _content_or_none(self, guid: str) -> Content | None:
        with self.db.session() as session:
            try:
                return contents.get(session, guid)
            except NotFound:
                return None

    def close(self) -> None:
        """Cancel the deploy tasks still running (the supervisor stops the processes)."""
        for job in list(self._running):
            job.cancel()


def _discard(line: str) -> None:
    """Where a start's progress goes when no deploy log is watching."""
