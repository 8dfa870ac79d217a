"""The dashboard page and its chart library come from reporting itself: no internet needed."""

from __future__ import annotations

import re

import httpx
from reporting.bootstrap import create_app
from reporting.settings import ReportingSettings


async def test_the_dashboard_needs_nothing_from_the_internet():
    app = create_app(ReportingSettings(CRM_JWT_SECRET="dashboard-tests-secret-of-32-bytes!!"), generation="g1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reporting") as client:
        page = await client.get("/dashboard")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert not re.search(r"""(src|href)=["']https?://""", page.text)
        scripts = re.findall(r"""<script src="([^"]+)">""", page.text)
        assert scripts == ["/dashboard/static/chart.umd.min.js"]
        library = await client.get(scripts[0])
        assert library.status_code == 200 and library.text.startswith("/*!\n * Chart.js v4.5.1")
        assert "客户中心 KPI 看板" in page.text and "Customer centre KPI dashboard" in page.text
        assert (await client.get("/dashboard/static/secrets.env")).status_code == 404
