"""What every page shares: the signed-in user from the session cookie, the language, and
rendering a template with both.

The session cookie holds the user's bearer token itself (HttpOnly, SameSite=Lax): the
token is signed (by CRM_JWT_SECRET in development, by the identity provider in
production), carries its own expiry, and is what the console forwards to the services.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from crm_contracts.regions import KNOWN_REGIONS
from crm_runtime.auth import Principal
from crm_runtime.problems import Problem
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from console.adapters.services import ServiceError, ServiceUnavailable
from console.deps import ConsoleDeps
from console.domain import actions as action_rules
from console.domain.i18n import Translator, pick_language
from console.domain.masking import mask_name, mask_phone, shown_phone
from console.domain.problems import tell
from console.domain.sla import clock_view, row_clock

SESSION_COOKIE = "crm_console_session"
LANG_COOKIE_PREFIX = "crm_console_lang_"

templates = Jinja2Templates(directory=str(files("console") / "templates"))
# For routes that answer a file: when they cannot, a page says why (OpenAPI says so too).
PAGE_ON_ERROR: dict[int | str, dict[str, Any]] = {
    "4XX": {"description": "A page saying why, in the user's language", "content": {"text/html": {}}}}


class SignInRequired(Exception):
    """No session, or it expired: the page sends the user to sign in (and back)."""


@dataclass(frozen=True)
class User:
    principal: Principal
    token: str
    language: str

    @property
    def roles(self) -> frozenset[str]:
        return self.principal.roles

    @property
    def regions(self) -> list[str]:
        if self.principal.all_regions:
            return list(KNOWN_REGIONS)
        return [r for r in KNOWN_REGIONS if r in self.principal.regions]

    def may(self, route: str) -> bool:
        return action_rules.may_take(route, self.roles)

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & action_rules.STAFF)


def language_cookie(subject: str) -> str:
    """One language cookie per user, so that colleagues sharing a front-desk PC each keep theirs."""
    return LANG_COOKIE_PREFIX + hashlib.sha256(subject.encode()).hexdigest()[:12]


def deps_of(request: Request) -> ConsoleDeps:
    return request.app.state.deps  # type: ignore[no-any-return]


def current_user(request: Request) -> User:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired
    try:
        principal = deps_of(request).verifier.verify(token)
    except Problem as exc:  # expired or forged: sign in again
        raise SignInRequired from exc
    language = pick_language(request.cookies.get(language_cookie(principal.subject)),
                             request.headers.get("accept-language"))
    return User(principal, token, language)


def anonymous_language(request: Request) -> str:
    return pick_language(request.query_params.get("lang") or request.cookies.get(LANG_COOKIE_PREFIX + "anon"),
                         request.headers.get("accept-language"))


def render(request: Request, name: str, context: dict[str, Any], *, user: User | None = None,
           language: str | None = None, status_code: int = 200) -> HTMLResponse:
    lang = user.language if user else (language or anonymous_language(request))
    t = Translator(lang)
    now = deps_of(request).now()
    base = {"request": request, "user": user, "t": t, "lang": lang, "now": now,
            "clock_view": lambda c: clock_view(c, now), "row_clock": lambda d: row_clock(d, now),
            "mask_phone": mask_phone, "mask_name": mask_name,
            "phone": (lambda p: shown_phone(p, user.roles)) if user else mask_phone,
            "regions": KNOWN_REGIONS, "settings": deps_of(request).settings,
            "is_htmx": request.headers.get("hx-request") == "true"}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def sign_in_redirect(request: Request) -> Response:
    target = "/signin?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def service_failure(request: Request, user: User, exc: ServiceError | ServiceUnavailable) -> HTMLResponse:
    """A page whose data a service refused or could not give, said in the user's language."""
    t = Translator(user.language)
    if isinstance(exc, ServiceUnavailable):
        told = None
        message = t("problem.unavailable", service=t.label("service", exc.service))
        status = 503
    else:
        told = tell(exc.status, exc.problem, t)
        message = told.headline
        status = exc.status if exc.status < 500 else 502
    return render(request, "error.html", {"message": message, "told": told}, user=user, status_code=status)
