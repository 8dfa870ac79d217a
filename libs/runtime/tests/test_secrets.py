"""No publicly known secret opens the door: outside development mode a service refuses to
start with a JWT secret anyone who reads this repository could sign tokens with."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from typing import Annotated

import httpx
import pytest
from crm_devstack.servers import free_port
from crm_runtime.app import Wiring, create_service_app
from crm_runtime.auth import Principal, current_principal, issue_token
from crm_runtime.settings import DEV_JWT_SECRET, ServiceSettings, UnsafeSettings
from fastapi import APIRouter, Depends

STRONG = "a-random-secret-for-this-test-only-0123456789"


def settings(**env: object) -> ServiceSettings:
    return ServiceSettings(CRM_SERVICE_NAME="secrets-test", **env)  # type: ignore[arg-type]


@pytest.mark.parametrize(("secret", "says"), [
    (None, "is not set"),
    (DEV_JWT_SECRET, "published in this repository"),
    ("change-me-to-a-long-random-value", "published in this repository"),  # deploy/k8s's example
    ("x" * 31, "shorter than 32 bytes"),
])
def test_production_refuses_a_missing_public_or_short_secret(secret, says):
    with pytest.raises(UnsafeSettings) as refused:
        settings(CRM_DEV_MODE=False, CRM_JWT_SECRET=secret).refuse_unsafe()
    assert says in str(refused.value) and "Set CRM_JWT_SECRET" in str(refused.value)


@pytest.mark.parametrize("env", [
    {"CRM_DEV_MODE": False, "CRM_JWT_SECRET": STRONG},
    {"CRM_DEV_MODE": False, "CRM_JWKS_URL": "https://idp.invalid/jwks.json"},  # HS256 is off then
    {"CRM_DEV_MODE": True},
])
def test_a_real_secret_a_jwks_url_or_development_mode_starts(env):
    settings(**env).refuse_unsafe()


def _app(s: ServiceSettings):
    router = APIRouter()

    @router.get("/me")
    async def me(principal: Annotated[Principal, Depends(current_principal)]) -> dict[str, str]:
        return {"sub": principal.subject}

    return create_service_app(s, title="t", description="d", wire=lambda ctx: Wiring(routers=[router]))


def _admin_token(secret: str) -> str:
    return issue_token(secret, sub="anyone", roles=["region_admin"], regions=["*"])


async def _get_me(app, token: str) -> int:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as client:
        return (await client.get("/me", headers={"Authorization": f"Bearer {token}"})).status_code


async def test_the_public_default_signs_tokens_only_in_development_mode():
    assert await _get_me(_app(settings(CRM_DEV_MODE=True)), _admin_token(DEV_JWT_SECRET)) == 200
    production = _app(settings(CRM_DEV_MODE=False, CRM_JWT_SECRET=STRONG))
    assert await _get_me(production, _admin_token(DEV_JWT_SECRET)) == 401
    assert await _get_me(production, _admin_token(STRONG)) == 200


def _service_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CRM_DEV_MODE", "CRM_JWT_SECRET", "CRM_JWKS_URL")}
    return {**env, "CRM_LOG_LEVEL": "INFO", **extra}


def _uvicorn(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", "notifications.bootstrap:create_app",
            "--host", "127.0.0.1", "--port", str(port)]


def test_a_service_process_without_a_secret_exits_saying_which_variable_to_set(tmp_path):
    # An empty .env in the working directory: the settings also read one.
    done = subprocess.run(_uvicorn(free_port()), env=_service_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "CRM_JWT_SECRET is not set" in done.stderr


@pytest.mark.stack
def test_a_service_process_with_a_real_secret_starts(stack, tmp_path):
    port = free_port()
    env = _service_env(CRM_JWT_SECRET=STRONG, KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap,
                       MONGODB_URL=stack.mongodb_url, CRM_DATABASE_SUFFIX=f"_secrets{port}")
    proc = subprocess.Popen(_uvicorn(port), env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the service exited: {proc.stderr.read() if proc.stderr else ''}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the service did not answer in 60 s"
                time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
