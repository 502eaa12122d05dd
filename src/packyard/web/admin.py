"""Administration pages: administrators only. (A placeholder until the admin pages land.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from packyard.web.render import render
from packyard.web.session import WebUser, admin_only

router = APIRouter(include_in_schema=False)


@router.get("/admin/")
def admin_home(request: Request, user: Annotated[WebUser, Depends(admin_only)]) -> Response:
    return render(request, "admin/index.html", section="admin")
