"""Every web page's route: one line per area. app.py includes `router`."""

from __future__ import annotations

from fastapi import APIRouter

from packyard.web import admin, assets, auth_pages, content, packages

router = APIRouter(include_in_schema=False)
router.include_router(assets.router)
router.include_router(auth_pages.router)
router.include_router(admin.router)
router.include_router(content.router)
router.include_router(packages.router)
