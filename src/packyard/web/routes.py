"""Every web page's route: one line per area. app.py includes `router`."""

from __future__ import annotations

from fastapi import APIRouter

from packyard.web import access, admin, admin_groups, auth_pages, content, oidc_pages, packages, profile, static_files
from packyard.web.error_pages import PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)
router.include_router(static_files.router)
router.include_router(auth_pages.router)
router.include_router(oidc_pages.router)
router.include_router(profile.router)
router.include_router(admin.router)
router.include_router(admin_groups.router)
router.include_router(access.router)  # before content's: its catch-all `/connect/apps/{guid}/{tab}` answers 404
router.include_router(content.router)
router.include_router(packages.router)
