"""The real app with one injected server error, to show that the schemathesis run finds one:
``/summary`` fails whenever it is asked for a county."""

from __future__ import annotations

from fastapi import FastAPI, Request

from buque.api.app import create_app as _create_app


def create_app() -> FastAPI:
    app = _create_app()

    @app.middleware("http")
    async def fail_summary(request: Request, call_next):
        if request.url.path == "/summary" and request.query_params.get("county"):
            raise RuntimeError("injected failure")
        return await call_next(request)

    return app
