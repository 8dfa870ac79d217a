"""The console's own routes: health, metrics, sign-in (development and OIDC), sign-out and
the language switch. The pages themselves are in pages_cases and pages_desk."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import jwt
from crm_contracts.regions import KNOWN_REGIONS
from crm_runtime.auth import ROLES, issue_token
from crm_runtime.problems import Problem
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from console.adapters.oidc import OidcError
from console.deps import ConsoleDeps
from console.domain.i18n import LANGUAGES, pick_language
from console.entrypoints.web import (
    LANG_COOKIE_PREFIX,
    SESSION_COOKIE,
    SignInRequired,
    current_user,
    language_cookie,
    render,
)

STAFF_ROLES = [r for r in ROLES if r != "partner"]  # partners use the API, not the console
OIDC_STATE_COOKIE = "crm_console_oidc_state"


def _safe_next(target: str | None) -> str:
    """Only a path of this console: never a redirect to another site."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def build_router(deps: ConsoleDeps, registry: CollectorRegistry) -> APIRouter:
    router = APIRouter()
    settings = deps.settings
    sign_ins = Counter("console_sign_ins_total", "Sign-ins to the console", ["method"], registry=registry)

    @router.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/health/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        # Ready while the services every page needs answer; the others only grey out a panel.
        checks = await asyncio.gather(deps.services.intake.live(), deps.services.cases.live())
        body = {"status": "ok" if all(checks) else "unavailable",
                "checks": {"intake": "ok" if checks[0] else "down", "cases": "ok" if checks[1] else "down"}}
        return JSONResponse(body, status_code=200 if all(checks) else 503)

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def set_session(response: Response, token: str, ttl_s: int) -> None:
        response.set_cookie(SESSION_COOKIE, token, max_age=ttl_s, httponly=True, samesite="lax",
                            secure=settings.cookie_secure, path="/")

    @router.get("/signin", response_class=HTMLResponse)
    async def signin_form(request: Request, next: str | None = None) -> Response:
        return render(request, "signin.html", {"next": _safe_next(next), "dev_mode": settings.dev_mode,
                                               "oidc": settings.oidc_enabled, "roles": STAFF_ROLES,
                                               "all_regions": list(KNOWN_REGIONS), "error": None})

    @router.post("/signin/dev", response_class=HTMLResponse)
    async def signin_dev(request: Request, name: Annotated[str, Form()] = "",
                         role: Annotated[str, Form()] = "agent",
                         regions: Annotated[list[str] | None, Form()] = None,
                         next: Annotated[str, Form()] = "/") -> Response:
        if not settings.dev_mode:  # production signs in at the identity provider only
            raise Problem(404, "Not found", "The development sign-in is off.")
        chosen = [r for r in (regions or []) if r in KNOWN_REGIONS or r == "*"]
        error = None
        if role not in STAFF_ROLES:
            error = "signin.error_role"
        elif not chosen:
            error = "signin.error_regions"
        elif not name.strip() or len(name) > 64:
            error = "signin.error_name"
        if error:
            return render(request, "signin.html", {"next": _safe_next(next), "dev_mode": True,
                                                   "oidc": settings.oidc_enabled, "roles": STAFF_ROLES,
                                                   "all_regions": list(KNOWN_REGIONS), "error": error},
                          status_code=422)
        token = issue_token(settings.signing_secret, sub=name.strip(), roles=[role], regions=chosen,
                            ttl_s=settings.session_ttl_s)
        response = RedirectResponse(_safe_next(next), status_code=303)
        set_session(response, token, settings.session_ttl_s)
        sign_ins.labels("dev").inc()
        return response

    @router.get("/auth/login")
    async def oidc_login(next: str | None = None) -> Response:
        if deps.oidc is None:
            raise Problem(404, "Not found", "No identity provider is configured.")
        state = deps.oidc.new_state()
        response = RedirectResponse(await deps.oidc.authorization_url(state), status_code=303)
        response.set_cookie(OIDC_STATE_COOKIE, f"{state}|{_safe_next(next)}", max_age=600, httponly=True,
                            samesite="lax", secure=settings.cookie_secure)
        return response

    @router.get("/auth/callback")
    async def oidc_callback(request: Request, code: str = "", state: str = "") -> Response:
        if deps.oidc is None:
            raise Problem(404, "Not found", "No identity provider is configured.")
        expected, _, target = (request.cookies.get(OIDC_STATE_COOKIE) or "").partition("|")
        if not code or not state or state != expected:
            return RedirectResponse("/signin", status_code=303)
        try:
            token = await deps.oidc.exchange(code)
            deps.verifier.verify(token)  # a token the services would refuse is not kept
            claims_exp = _expiry(token)
        except (OidcError, Problem, jwt.PyJWTError):  # back to the sign-in page, nothing stored
            return RedirectResponse("/signin", status_code=303)
        response = RedirectResponse(_safe_next(target), status_code=303)
        set_session(response, token, max(60, claims_exp - int(time.time())))
        response.delete_cookie(OIDC_STATE_COOKIE)
        sign_ins.labels("oidc").inc()
        return response

    @router.post("/signout")
    async def signout() -> Response:
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.post("/language")
    async def language(request: Request, lang: Annotated[str, Form()], next: Annotated[str, Form()] = "/") -> Response:
        chosen = pick_language(lang if lang in LANGUAGES else None)
        response = RedirectResponse(_safe_next(next), status_code=303)
        try:
            user = current_user(request)
            cookie = language_cookie(user.principal.subject)
        except SignInRequired:
            cookie = LANG_COOKIE_PREFIX + "anon"
        response.set_cookie(cookie, chosen, max_age=365 * 86400, httponly=True, samesite="lax",
                            secure=settings.cookie_secure)
        return response

    @router.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/queue", status_code=303)

    return router


def _expiry(token: str) -> int:
    claims = jwt.decode(token, options={"verify_signature": False})  # verified just before, by the verifier
    return int(claims.get("exp", time.time() + 3600))
