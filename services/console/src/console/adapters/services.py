"""HTTP clients of the services the console calls, each request with the signed-in user's
token: the services, not the console, decide what that user may see and do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx


def seg(value: object) -> str:
    """A path segment of a service URL: whatever an id holds (a '/', '?', a control
    character from a forged link) stays inside the segment."""
    return quote(str(value), safe="")


class ServiceError(Exception):
    """The service answered with a problem (4xx/5xx); `problem` is its problem+json body."""

    def __init__(self, service: str, status: int, problem: dict[str, Any]):
        super().__init__(f"{service} answered {status}")
        self.service, self.status, self.problem = service, status, problem


class ServiceUnavailable(Exception):
    """The service did not answer at all (down, or too slow)."""

    def __init__(self, service: str):
        super().__init__(f"{service} did not answer")
        self.service = service


class ServiceClient:
    def __init__(self, name: str, base_url: str, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None):
        self.name = name
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport)

    async def request(self, method: str, path: str, token: str | None, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {}) | ({"Authorization": f"Bearer {token}"} if token else {})
        try:
            response = await self.http.request(method, path, headers=headers, **kw)
        except httpx.InvalidURL as exc:  # from what a user typed: theirs to correct, not a failure
            raise ServiceError(self.name, 422, {"title": "Invalid request", "detail": "Not a valid address."}) from exc
        except httpx.HTTPError as exc:  # refused, reset, timed out
            raise ServiceUnavailable(self.name) from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"title": response.reason_phrase, "detail": response.text[:300]}
            if not isinstance(problem, dict):
                problem = {"title": response.reason_phrase}
            raise ServiceError(self.name, response.status_code, problem)
        return response

    async def get_json(self, path: str, token: str | None, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v not in (None, "")}
        return (await self.request("GET", path, token, params=clean)).json()

    async def post_json(self, path: str, token: str | None, body: Any = None, **kw: Any) -> Any:
        response = await self.request("POST", path, token, json=body if body is not None else {}, **kw)
        return response.json() if response.content else {}

    async def live(self) -> bool:
        try:
            return (await self.http.get("/health/live")).status_code == 200
        except httpx.HTTPError:
            return False

    async def aclose(self) -> None:
        await self.http.aclose()


class CasesClient(ServiceClient):
    async def queue(self, token: str, **filters: Any) -> dict[str, Any]:
        return await self.get_json("/v1/cases", token, **filters)  # type: ignore[no-any-return]

    async def case(self, token: str, case_id: str) -> dict[str, Any]:
        return await self.get_json(f"/v1/cases/{seg(case_id)}", token)  # type: ignore[no-any-return]

    async def act(self, token: str, case_id: str, route: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.post_json(f"/v1/cases/{seg(case_id)}/{seg(route)}", token, body)  # type: ignore[no-any-return]

    async def contacts(self, token: str, **filters: Any) -> dict[str, Any]:
        return await self.get_json("/v1/contacts", token, **filters)  # type: ignore[no-any-return]

    async def contact(self, token: str, contact_id: str) -> dict[str, Any]:
        return await self.get_json(f"/v1/contacts/{seg(contact_id)}", token)  # type: ignore[no-any-return]

    async def answer(self, token: str, contact_id: str, answer: str) -> dict[str, Any]:
        return await self.post_json(  # type: ignore[no-any-return]
            f"/v1/contacts/{seg(contact_id)}/answer", token, {"answer": answer})

    async def open_case(self, token: str, contact_id: str) -> dict[str, Any]:
        return await self.post_json(f"/v1/contacts/{seg(contact_id)}/open-case", token)  # type: ignore[no-any-return]

    async def incident(self, token: str, incident_id: str) -> dict[str, Any]:
        """The incident with the cases it groups."""
        return await self.get_json(f"/v1/incidents/{seg(incident_id)}", token)  # type: ignore[no-any-return]

    async def incidents(self, token: str, **filters: Any) -> dict[str, Any]:
        return await self.get_json("/v1/incidents", token, **filters)  # type: ignore[no-any-return]


class IntakeClient(ServiceClient):
    async def record(self, token: str, contact: dict[str, Any], files: list[tuple[str, bytes, str]],
                     idempotency_key: str) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key}
        if not files:
            return await self.post_json("/v1/contacts", token, contact, headers=headers)  # type: ignore[no-any-return]
        import json

        parts = [("files", (name, data, ctype)) for name, data, ctype in files]
        response = await self.request("POST", "/v1/contacts", token, headers=headers,
                                      data={"contact": json.dumps(contact, ensure_ascii=False)}, files=parts)
        return response.json()  # type: ignore[no-any-return]

    async def contact(self, token: str, contact_id: str) -> dict[str, Any]:
        return await self.get_json(f"/v1/contacts/{seg(contact_id)}", token)  # type: ignore[no-any-return]

    async def attachment(self, token: str, contact_id: str, attachment_id: str) -> tuple[str, bytes]:
        response = await self.request("GET", f"/v1/contacts/{seg(contact_id)}/attachments/{seg(attachment_id)}", token)
        return response.headers.get("content-type", "application/octet-stream"), response.content

    async def lookup_customer(self, token: str, phone: str, region: str) -> dict[str, Any] | None:
        """The caller recognised from a phone number: the customer, {} for a number intake
        does not know (or cannot read as one), None when the lookup is not there."""
        try:
            return await self.get_json("/v1/customers/lookup", token,  # type: ignore[no-any-return]
                                       phone=phone, region=region)
        except ServiceError as exc:
            if exc.status in (404, 422) and names_field(exc.problem, "phone"):  # the number is not known
                return {}
            if exc.status in (404, 405):  # no such route (an older intake)
                return None
            raise


def names_field(problem: dict[str, Any], field: str) -> bool:
    """Whether a problem+json body blames `field` (`field`, or `errors[].field`)."""
    errors = problem.get("errors")
    named = [e.get("field") for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    return problem.get("field") == field or field in named


@dataclass
class Services:
    intake: IntakeClient
    cases: CasesClient
    notifications: ServiceClient
    surveys: ServiceClient
    reporting: ServiceClient

    def all(self) -> list[ServiceClient]:
        return [self.intake, self.cases, self.notifications, self.surveys, self.reporting]

    async def aclose(self) -> None:
        for client in self.all():
            await client.aclose()
