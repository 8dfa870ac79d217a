"""RFC 9457 problem details for every HTTP error, naming the field at fault."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An HTTP error a handler raises on purpose; rendered as problem+json."""

    def __init__(self, status: int, title: str, detail: str = "", *, field: str | None = None,
                 type_: str = "about:blank", headers: dict[str, str] | None = None,
                 **extensions: Any):
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.type = type_
        self.headers = headers
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.field:
            body["errors"] = [{"field": self.field, "message": self.detail or self.title}]
        body.update(self.extensions)
        return body


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    return JSONResponse(problem.body(request.url.path if request else None), status_code=problem.status,
                        media_type=PROBLEM_JSON, headers=problem.headers)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "customer", "phone") -> "customer.phone"; ("query", "region") -> "region"
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(map(str, loc))


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field_path(e["loc"]), "message": e["msg"], "type": e["type"]}
                  for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        body = {"type": "about:blank", "title": "Invalid request", "status": 422,
                "detail": detail, "instance": request.url.path, "errors": errors}
        return JSONResponse(body, status_code=422, media_type=PROBLEM_JSON)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, never the caller's fault: the same problem+json shape as every other error,
        # no detail that could leak data; Starlette still logs the traceback.
        return problem_response(Problem(500, "Internal error", "The service failed; the error is logged."),
                                request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed", 413: "Request too large"}.get(
            exc.status_code, "Error")
        return problem_response(Problem(exc.status_code, title, str(exc.detail),
                                        headers=getattr(exc, "headers", None)), request)


class RequestSizeLimit:
    """Refuse request bodies above `max_bytes` with 413, before a handler reads them.

    Checks Content-Length up front and counts streamed bytes for chunked uploads.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, overrides: dict[str, int] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    def _limit(self, path: str) -> int:
        for prefix, limit in self.overrides.items():
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(scope, send, limit)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._refuse(scope, send, limit)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        response = JSONResponse(
            {"type": "about:blank", "title": "Request too large", "status": 413,
             "detail": f"The request body exceeds {limit} bytes.", "instance": scope["path"]},
            status_code=413, media_type=PROBLEM_JSON)
        await response({"type": "http", **scope}, _empty_receive, send)


class _TooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}
