"""The dashboard page (until the console lands): served by reporting with its chart library,
so it works without the internet. The page holds no data: it calls the KPI API with the
user's token."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
ASSETS = {"chart.umd.min.js": "text/javascript"}


def build_router() -> APIRouter:
    router = APIRouter(tags=["dashboard"])

    @router.get("/dashboard", response_class=HTMLResponse, summary="The KPI dashboard page (zh-CN / en)")
    async def dashboard() -> HTMLResponse:
        return HTMLResponse((STATIC / "dashboard.html").read_text(encoding="utf-8"))

    @router.get("/dashboard/static/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        from crm_runtime.problems import Problem

        if name not in ASSETS:
            raise Problem(404, "Not found", f"No asset named {name}.")
        return FileResponse(STATIC / name, media_type=ASSETS[name],
                            headers={"Cache-Control": "public, max-age=86400"})

    return router
