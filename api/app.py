"""The app factory: ``create_app(Settings(data=PATH))`` wires settings, the run store and routers.

The lifespan loads the runs once (manifests of all, tables and indexes of the newest, or of all
with ``preload="all"``); handlers only select and encode. If no lifespan ran (some test
clients), the store loads on the first request instead.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from buque.api import problems, session
from buque.api.limits import BodyLimit
from buque.api.openapi import build_openapi
from buque.api.routes import basemap, exports, features, ogc, plans, projects, runs, summary, tiles
from buque.api.routes import exit as exit_routes
from buque.api.routes import map as map_routes
from buque.api.routes import verify as verify_routes
from buque.api.security import SecurityHeaders, docs_policy
from buque.api.settings import Settings
from buque.api.stores import open_store

log = logging.getLogger("buque.api")


def _version() -> str:
    from buque.geo.version import tool_version

    return tool_version()


def _set_pattern(store: Any) -> str | None:
    """The ``/whatif`` ``set`` pattern of the newest run's profile (None: not on disk)."""
    from buque.geo.archive import read_manifest
    from buque.geo.plan.params import set_pattern
    from buque.geo.plan.works import run_profile

    path = getattr(store, "paths", {}).get(store.newest)
    return None if path is None else set_pattern(run_profile(read_manifest(path)))


def _mount_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the ``swagger-ui-bundle`` package, served by this app, so it
    works with no internet access."""
    from fastapi import Depends
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    from buque.api.deps import page_viewer

    app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    page = get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} — docs",
                               swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                               swagger_css_url="/docs/assets/swagger-ui.css",
                               swagger_favicon_url="/docs/assets/favicon-32x32.png")
    html = bytes(page.body).decode("utf-8")
    policy = docs_policy(html)  # its one inline script allowed by hash

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(page_viewer)])
    def docs() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})


def create_app(settings: Settings | None = None) -> FastAPI:
    """An ASGI app serving the run (or the folder of runs) at ``settings.data``, or the runs
    published into PostGIS at ``settings.postgres``."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "store", None) is None:
            app.state.store = await anyio.to_thread.run_sync(lambda: open_store(settings))
            log.info("serving %d run(s) from %s", len(app.state.store.ids), app.state.store.label)
        store = app.state.store
        if store.newest is not None:  # the newest run's tile layers are built once, here
            cache = tiles.cache_of_app(app)
            await anyio.to_thread.run_sync(lambda: cache.layers(store.get()))
        # the loaded run is long-lived: keep the garbage collector from rescanning its
        # millions of objects (full collections took 0.1-0.3 s each, stalling requests)
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            exports.close_jobs(app)  # unfinished export jobs are failed, their workers ended
            store.close()

    app = FastAPI(
        title=f"{settings.title} API", version=_version(), lifespan=lifespan,
        docs_url=None, redoc_url=None,
        description="Rural-village infrastructure gaps against the national standard: "
        "deficient-village lists (OGC API - Features), summaries, remedy lists and run "
        "comparisons. Errors are RFC 7807 problem documents.",
        openapi_tags=[{"name": "OGC API - Features"}, {"name": "Villages"},
                      {"name": "Summary"}, {"name": "Projects"}, {"name": "Runs"},
                      {"name": "Plans"},
                      {"name": "Input layers"}, {"name": "Verification"},
                      {"name": "Basemap"}],
    )
    app.state.settings = settings
    app.state.store = None
    app.state.basemap = None
    if settings.basemap is not None:  # opened here: a bad file stops the server at once
        from buque.geo.basemap import open_basemap

        app.state.basemap = open_basemap(settings.basemap)
    problems.install(app)
    session.install(app)
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET"],
                       allow_headers=["X-API-Key", "Authorization", "Accept"],
                       expose_headers=["OGC-NumberMatched", "OGC-NumberReturned", "X-Buque-Run"])
    app.add_middleware(SecurityHeaders)  # CSP, nosniff, Referrer-Policy on every response
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)  # 413 beyond it
    app.include_router(ogc.public)
    app.include_router(features.router)      # /collections/villages/... before the generic routes
    app.include_router(ogc.router)
    app.include_router(summary.router)
    app.include_router(projects.router)
    app.include_router(exit_routes.router)
    app.include_router(runs.router)
    app.include_router(verify_routes.router)
    app.include_router(plans.router)
    if settings.input_layers:
        app.include_router(features.layers)
    app.include_router(tiles.router)
    app.include_router(exports.router)
    app.include_router(map_routes.router)
    app.include_router(map_routes.public)
    app.include_router(map_routes.pages)
    if settings.basemap is not None:  # described and served only when there is one
        app.include_router(basemap.router)
    app.include_router(session.router)
    map_routes.mount_static(app)

    _mount_docs(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            store = app.state.store
            indicators: list[str] = []
            pattern = None
            if store is not None and store.newest is not None:
                indicators = store.get().data.indicators
                pattern = _set_pattern(store)
            app.openapi_schema = build_openapi(app, settings, indicators, pattern)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
