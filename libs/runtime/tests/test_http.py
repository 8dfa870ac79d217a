"""HTTP plumbing every service shares: bearer tokens, regions, problem+json, size limits,
and no personal data in the logs."""

from __future__ import annotations

import io
import logging
import time
from typing import Annotated

import httpx
import jwt
import pytest
from crm_runtime.auth import Principal, TokenVerifier, current_principal, ensure_region, issue_token
from crm_runtime.logging import PersonalDataFilter, TraceContextFilter
from crm_runtime.problems import RequestSizeLimit, install_problem_handlers
from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field

SECRET = "test-secret-of-at-least-thirty-two-bytes"


class ContactIn(BaseModel):
    region: str
    phone: str = Field(pattern=r"^[0-9+\- ()]{7,20}$")


def build_app() -> FastAPI:
    app = FastAPI()
    app.state.token_verifier = TokenVerifier(SECRET)
    install_problem_handlers(app)
    app.add_middleware(RequestSizeLimit, max_bytes=2000)
    log = logging.getLogger("test.contacts")

    @app.post("/contacts")
    async def create(body: ContactIn, principal: Annotated[Principal, Depends(current_principal)]) -> dict:
        ensure_region(principal, body.region)
        log.info("contact from %s in %s", body.phone, body.region)
        return {"ok": True}

    return app


@pytest.fixture
def logs():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TraceContextFilter())
    handler.addFilter(PersonalDataFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old)


@pytest.fixture
async def client():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app()), base_url="http://t") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


BODY = {"region": "shenzhen", "phone": "13800018000"}


async def test_no_token_is_refused_with_problem_json(client):
    r = await client.post("/contacts", json=BODY)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["title"] == "Authentication required"


@pytest.mark.parametrize("token", [
    "expired", "wrong-signature", "alg-none", "garbage",
])
async def test_bad_tokens_are_refused(client, token):
    now = int(time.time())
    claims = {"sub": "u1", "roles": ["agent"], "regions": ["shenzhen"]}
    tokens = {
        "expired": jwt.encode({**claims, "exp": now - 10}, SECRET, algorithm="HS256"),
        "wrong-signature": jwt.encode({**claims, "exp": now + 60}, "another-secret-of-at-least-thirty-two-bytes", algorithm="HS256"),
        "alg-none": jwt.encode({**claims, "exp": now + 60}, None, algorithm="none"),
        "garbage": "not.a.token",
    }
    r = await client.post("/contacts", json=BODY, headers=bearer(tokens[token]))
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"


async def test_a_region_outside_the_token_is_refused_and_audited(client, logs):
    token = issue_token(SECRET, sub="agent-sh", roles=["agent"], regions=["shanghai"])
    r = await client.post("/contacts", json=BODY, headers=bearer(token))
    assert r.status_code == 403
    assert r.json()["errors"] == [{"field": "region", "message": r.json()["detail"]}]
    assert "region refused" in logs.getvalue()


async def test_a_token_for_all_regions_passes(client):
    token = issue_token(SECRET, sub="hq", roles=["auditor"], regions=["*"])
    assert (await client.post("/contacts", json=BODY, headers=bearer(token))).status_code == 200


async def test_validation_errors_name_the_field(client):
    token = issue_token(SECRET, sub="a", roles=["agent"], regions=["shenzhen"])
    r = await client.post("/contacts", json={"region": "shenzhen", "phone": "call me"}, headers=bearer(token))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == ["phone"]


async def test_an_oversized_body_gets_413(client):
    token = issue_token(SECRET, sub="a", roles=["agent"], regions=["shenzhen"])
    r = await client.post("/contacts", json={**BODY, "padding": "x" * 5000}, headers=bearer(token))
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"


async def test_a_phone_number_sent_in_a_request_appears_in_no_log_line(client, logs):
    token = issue_token(SECRET, sub="a", roles=["agent"], regions=["shenzhen"])
    r = await client.post("/contacts", json={"region": "shenzhen", "phone": "+86 138-0001-8000"},
                          headers=bearer(token))
    assert r.status_code == 200
    logging.getLogger("test").warning("caller e-mail zhang.wei@example.com id 440301199001011234")
    text = logs.getvalue()
    assert "138****8000" in text
    for secret in ("13800018000", "138-0001-8000", "0001", "zhang.wei@example.com", "19900101"):
        assert secret not in text
