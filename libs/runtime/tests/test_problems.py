"""Every error answer is problem+json, even the ones a bug causes."""

from __future__ import annotations

import httpx
from crm_runtime.problems import PROBLEM_JSON, install_problem_handlers
from fastapi import FastAPI


async def test_an_unexpected_exception_answers_problem_json_without_its_message():
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> dict:
        raise OverflowError("date value out of range for customer 13800018000")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/boom")
    assert r.status_code == 500
    assert r.headers["content-type"] == PROBLEM_JSON
    assert r.json()["status"] == 500 and r.json()["title"]
    assert "13800018000" not in r.text  # the exception's text may carry personal data
