"""The first upload of a project that a mirror's upstream also has: say that it now hides the upstream's versions.

A repository walks its sources in priority order and stops at the first that has a name (the dependency-confusion
guard), so once a local source holds a project, every mirror source below it stops serving that project's
upstream versions. That is by design, but it surprises whoever uploads a fork of a public project, so the first
upload of such a project says so: in the upload's response text (`twine upload --verbose` shows it, `packyard add`
prints it), in the server log, and in the change log as a `shadow` event (the admin overview shows it).
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool

from packyard.changelog.events import record
from packyard.db import Database
from packyard.repository.index.page_cache import RepoInfo, SourceInfo
from packyard.repository.mirror.service import Mirror

log = logging.getLogger("packyard.mirror")


async def shadow_warning(
    mirror: Mirror, db: Database, repos: list[RepoInfo], source: SourceInfo, project: str
) -> str | None:
    """A `warning:` line when mirror sources ranked below `source` have `project` upstream; it is logged and
    recorded in the change log. None when nothing is hidden (or no upstream could be asked)."""
    hidden: dict[int, tuple[SourceInfo, list[str]]] = {}
    for repo in repos:
        ids = [s.id for s in repo.sources]
        if source.id not in ids:
            continue
        for below in repo.sources[ids.index(source.id) + 1 :]:
            if below.is_mirror:
                hidden.setdefault(below.id, (below, []))[1].append(repo.name)
    parts = []
    for mirrored, repo_names in hidden.values():
        url = await mirror.upstream_lists(mirrored, project)
        if url is not None:
            names = ", ".join(f"`{n}`" for n in sorted(repo_names))
            parts.append((mirrored, url, names))
    if not parts:
        return None
    where = "; ".join(f"mirror source `{m.name}` (`{url}`) in repository {names}" for m, url, names in parts)
    message = (
        f"warning: `{project}` is also on the upstream of {where}. From now on those repositories serve only the "
        f"versions in `{source.name}` and hide every upstream version of `{project}` (the dependency-confusion "
        f"guard); upload every version you need to `{source.name}`, or give your project a name the upstream "
        "does not have."
    )
    log.warning("%s", message.removeprefix("warning: "))

    def remember() -> None:
        with db.session() as session:
            detail = ", ".join(f"{m.name} ({url})" for m, url, _ in parts)
            record(session, "shadow", source_id=source.id, project=project, detail=detail)

    await run_in_threadpool(remember)
    return message
