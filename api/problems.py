"""Errors as RFC 7807/9457 problem details (``application/problem+json``)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from buque.geo.query import InputChanged, QueryError

PROBLEM = "application/problem+json"
TYPE_BASE = "https://buque.invalid/problems/"  # stable identifiers, not fetched
log = logging.getLogger("buque.api")


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, kind: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        self.status, self.detail, self.kind = status, detail, kind
        self.headers, self.extra = headers, extra
        super().__init__(detail)


def problem_response(request: Request, status: int, detail: str, *, kind: str | None = None,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body = {"type": TYPE_BASE + kind if kind else "about:blank", "title": title,
            "status": status, "detail": detail, "instance": request.url.path, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _validation_detail(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    items = []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("query", "path", "header", "body")]
        items.append({"parameter": ".".join(loc) or None, "message": e.get("msg", "invalid"),
                      "input": e.get("input") if isinstance(e.get("input"), str | int | float)
                      else None})
    detail = "; ".join(f"{i['parameter']}: {i['message']}" if i["parameter"] else i["message"]
                       for i in items)
    return detail or "invalid request", items


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.detail, kind=exc.kind,
                                headers=exc.headers, **exc.extra)

    @app.exception_handler(QueryError)
    async def _query(request: Request, exc: QueryError) -> JSONResponse:
        return problem_response(request, 400, str(exc), kind="invalid-parameter",
                                invalid_params=[{"parameter": exc.param, "message": str(exc)}])

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, items = _validation_detail(list(exc.errors()))
        return problem_response(request, 400, detail, kind="invalid-parameter",
                                invalid_params=items)

    @app.exception_handler(InputChanged)
    async def _gone(request: Request, exc: InputChanged) -> JSONResponse:
        return problem_response(request, 410, str(exc), kind="input-changed")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such resource: {request.url.path}"
        return problem_response(request, exc.status_code, detail,
                                headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(request, 500, "internal error; the server log has the details",
                                kind="internal")
