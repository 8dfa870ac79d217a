"""The screens over the services that land later: return visits (surveys), a customer's
messages (notifications), the KPI dashboard and monthly report (reporting).

Each shows a clearly marked empty panel while its service does not answer the route yet
(not running, or without that API), instead of failing the page."""

from __future__ import annotations

from typing import Annotated, Any

from crm_runtime.problems import Problem
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.adapters.services import ServiceClient, ServiceError, ServiceUnavailable, seg
from console.deps import ConsoleDeps
from console.domain.i18n import Translator
from console.domain.problems import tell
from console.entrypoints.web import PAGE_ON_ERROR, current_user, render, service_failure

REPORT_FORMATS = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


class NotLanded(Exception):
    """The service, or this route of it, is not there yet."""


async def _get(client: ServiceClient, path: str, token: str, **params: Any) -> Any:
    try:
        return await client.get_json(path, token, **params)
    except ServiceUnavailable as exc:
        raise NotLanded from exc
    except ServiceError as exc:
        if exc.status in (404, 405) and not exc.problem.get("field"):
            raise NotLanded from exc
        raise


def build_router(deps: ConsoleDeps) -> APIRouter:
    router = APIRouter()
    surveys, notifications, reporting = deps.services.surveys, deps.services.notifications, deps.services.reporting

    @router.get("/returns", response_class=HTMLResponse)
    async def returns(request: Request, region: str = "", due: str = "open") -> Response:
        user = current_user(request)
        region = region if region in user.regions else user.regions[0]
        try:
            page = await _get(surveys, "/v1/worklist", user.token, region=region, due=due, limit=100)
        except NotLanded:
            return render(request, "panel_missing.html", {"screen": "returns", "service": "surveys"}, user=user)
        except ServiceError as exc:
            return service_failure(request, user, exc)
        return render(request, "returns.html", {"rows": page.get("items", []), "region": region, "due": due},
                      user=user)

    @router.get("/returns/{survey_id}", response_class=HTMLResponse)
    async def return_visit(request: Request, survey_id: str) -> Response:
        user = current_user(request)
        try:
            survey = await _get(surveys, f"/v1/surveys/{seg(survey_id)}", user.token)
            definition = await _get(surveys, f"/v1/definitions/{seg(survey.get('kind'))}", user.token)
        except NotLanded:
            return render(request, "panel_missing.html", {"screen": "returns", "service": "surveys"}, user=user)
        except ServiceError as exc:
            return service_failure(request, user, exc)
        return render(request, "return_visit.html", {"survey": survey, "definition": definition, "told": None},
                      user=user)

    @router.post("/returns/{survey_id}", response_class=HTMLResponse)
    async def record_visit(request: Request, survey_id: str, mode: Annotated[str, Form()] = "phone") -> Response:
        user = current_user(request)
        form = await request.form()
        answers: dict[str, Any] = {}
        for key, value in form.items():
            if key.startswith("q_") and isinstance(value, str) and value.strip():
                answers[key[2:]] = int(value) if value.strip().isdigit() else value.strip()
        body: dict[str, Any] = {"mode": mode, "answers": answers}
        notes = str(form.get("visit_notes") or "").strip()
        if mode == "home_visit":  # a home visit is recorded with who went and what they saw
            body["visit_record"] = {"visited_at": deps.now().isoformat(), "visitor": user.principal.subject,
                                    "notes": notes}
        try:
            await surveys.post_json(f"/v1/surveys/{seg(survey_id)}/answers", user.token, body)
        except ServiceError as exc:
            told = tell(exc.status, exc.problem, Translator(user.language))
            try:  # the form again, with the refusal; no such survey: the refusal alone
                survey = await _get(surveys, f"/v1/surveys/{seg(survey_id)}", user.token)
                definition = await _get(surveys, f"/v1/definitions/{seg(survey.get('kind'))}", user.token)
            except (NotLanded, ServiceError):
                return service_failure(request, user, exc)
            return render(request, "return_visit.html", {"survey": survey, "definition": definition, "told": told},
                          user=user, status_code=exc.status if exc.status < 500 else 502)
        except ServiceUnavailable as exc:
            return service_failure(request, user, exc)
        return RedirectResponse("/returns?done=1", status_code=303)

    @router.get("/customers/{customer_id}/messages", response_class=HTMLResponse)
    async def messages(request: Request, customer_id: str) -> Response:
        """A panel of the case page (loaded after it): what the customer was sent."""
        user = current_user(request)
        try:
            found = await _get(notifications, f"/v1/customers/{seg(customer_id)}/messages", user.token)
        except NotLanded:
            return render(request, "messages.html", {"missing": True, "rows": []}, user=user)
        except ServiceError as exc:
            return render(request, "messages.html", {"missing": False, "rows": [], "refused": exc.status}, user=user)
        return render(request, "messages.html", {"missing": False, "rows": found.get("messages", [])}, user=user)

    @router.get("/kpis", response_class=HTMLResponse)
    async def kpis(request: Request, region: str = "", month: str = "") -> Response:
        user = current_user(request)
        region = region if region in user.regions else user.regions[0]
        try:
            report = await _get(reporting, "/v1/kpis", user.token, region=region, month=month or None)
        except NotLanded:
            return render(request, "panel_missing.html", {"screen": "kpis", "service": "reporting"}, user=user)
        except ServiceError as exc:
            return service_failure(request, user, exc)
        return render(request, "kpis.html", {"report": report, "region": region, "month": month,
                                             "dashboard_url": deps.settings.reporting_url.rstrip("/") + "/dashboard"},
                      user=user)

    @router.get("/kpis/report.{fmt}", responses=PAGE_ON_ERROR)
    async def monthly_report(request: Request, fmt: str, region: str = "", month: str = "") -> Response:
        user = current_user(request)
        if fmt not in REPORT_FORMATS:
            raise Problem(404, "Not found", "The report comes as csv or xlsx.", field="fmt")
        region = region if region in user.regions else user.regions[0]
        params = {"region": region, "format": fmt} | ({"month": month} if month else {})
        try:
            answer = await reporting.request("GET", "/v1/reports/monthly-complaints", user.token, params=params)
        except (ServiceError, ServiceUnavailable) as exc:
            return service_failure(request, user, exc)
        disposition = answer.headers.get("content-disposition", f'attachment; filename="complaints.{fmt}"')
        return Response(answer.content, media_type=REPORT_FORMATS[fmt], headers={"Content-Disposition": disposition})

    return router
