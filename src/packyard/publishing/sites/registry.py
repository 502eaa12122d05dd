"""Content served as files: which bundle's files each content serves, and getting a bundle's files ready.

A static bundle is served from its extracted folder (`bundle-<id>/`); a notebook or Quarto bundle from
the output of its render (`site-<id>/site/`). Both are written once and never changed, so activating a
bundle, or rolling back to one, only moves a pointer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from packyard.publishing.bundles.manifest import Manifest, parse_manifest
from packyard.publishing.errors import BundleError
from packyard.publishing.sandbox import Quota, Sandbox
from packyard.publishing.sites.files import Site
from packyard.publishing.sites.render import RenderJob, load_rendered, render


class Sites:
    def __init__(
        self, apps: Path, sandbox: Sandbox, quota: Quota, quarto: str = "", render_timeout: float = 1800.0
    ) -> None:
        self.apps = apps
        self.sandbox = sandbox
        self.quota = quota  # a render's: the server's defaults, as content settings are for processes
        self.quarto = quarto
        self.render_timeout = render_timeout
        self._active: dict[str, Site] = {}
        self._drafts: dict[str, Site] = {}

    def output_dir(self, guid: str, bundle_id: int) -> Path:
        return self.apps / guid / f"site-{bundle_id}"

    def find(self, guid: str, bundle_id: int | None = None) -> Site | None:
        """The active site, or with `bundle_id` the draft or active site of that bundle, if known in memory."""
        if bundle_id is not None:
            draft = self._drafts.get(guid)
            if draft is not None and draft.bundle_id == bundle_id:
                return draft
        active = self._active.get(guid)
        if active is not None and (bundle_id is None or active.bundle_id == bundle_id):
            return active
        return None

    def load(self, guid: str, bundle_id: int) -> Site | None:
        """A bundle's files as an earlier deploy left them on disk (after a restart, or to roll back to it); None
        if there are none."""
        rendered = load_rendered(self.output_dir(guid, bundle_id))
        if rendered is not None:
            return Site(guid, bundle_id, rendered.root, rendered.index)
        root = self.apps / guid / f"bundle-{bundle_id}"
        try:
            manifest = parse_manifest((root / "manifest.json").read_bytes())
        except (OSError, BundleError):
            return None
        # A bundle whose primary_html is missing failed its deploy: deploying it again says why.
        return _static_site(guid, bundle_id, root, manifest) if manifest.appmode == "static" else None

    def activate(self, site: Site) -> None:
        self._active[site.guid] = site
        if self._drafts.get(site.guid) == site:
            del self._drafts[site.guid]

    def add_draft(self, site: Site) -> None:
        self._drafts[site.guid] = site

    def discard(self, guid: str, bundle_id: int) -> None:
        """Bundle `bundle_id` was deleted: stop serving it if it is the content's draft."""
        draft = self._drafts.get(guid)
        if draft is not None and draft.bundle_id == bundle_id:
            del self._drafts[guid]

    def retire(self, guid: str) -> None:
        """The content now runs a process (or is gone): stop serving its files."""
        self._active.pop(guid, None)
        self._drafts.pop(guid, None)

    async def build(
        self,
        guid: str,
        bundle_id: int,
        root: Path,
        manifest: Manifest,
        python: Path | None,
        variables: dict[str, str],
        say: Callable[[str], None],
    ) -> Site:
        """The bundle's files ready to serve: checked for static content, rendered (once) for the others."""
        if manifest.appmode == "static":
            site = _static_site(guid, bundle_id, root, manifest)
            if site is None:
                raise BundleError(
                    f"manifest.json: `metadata.primary_html` is `{manifest.primary_html}`, which is not a file in "
                    "the bundle; add it, or name the page to serve first (e.g. `index.html`)."
                )
            say("Static content: its files are served as uploaded; nothing to build.")
            return site
        dest = self.output_dir(guid, bundle_id)
        earlier = load_rendered(dest)
        if earlier is not None:
            say(f"Bundle {bundle_id} was rendered by an earlier deploy; serving that output.")
            return Site(guid, bundle_id, earlier.root, earlier.index)
        job = RenderJob(
            manifest, root, dest, python, variables, self.render_timeout, self.sandbox, self.quota, self.quarto
        )
        rendered = await render(job, say)
        return Site(guid, bundle_id, rendered.root, rendered.index)


def static_index(manifest: Manifest) -> str | None:
    """The page a static bundle opens with: `primary_html`, else an HTML entrypoint (hand-written manifests)."""
    if manifest.primary_html:
        return manifest.primary_html
    entry = manifest.entrypoint
    return entry if entry and entry.lower().endswith((".html", ".htm")) else None


def _static_site(guid: str, bundle_id: int, root: Path, manifest: Manifest) -> Site | None:
    """A static bundle as served; None when the page its manifest names is not in it."""
    index = static_index(manifest)
    if index is not None and not ((root / index).resolve().is_relative_to(root.resolve()) and (root / index).is_file()):
        return None if manifest.primary_html else Site(guid, bundle_id, root)
    return Site(guid, bundle_id, root, index)
