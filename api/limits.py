"""What one request may cost, and how the server says so: every limit is a setting, stated in
the API description (:func:`limits_markdown`, shown on ``/docs``) and answered, when reached,
with a problem document naming it.

- page size: ``limit`` above ``max_limit`` is capped (OGC API - Features allows it; GIS clients
  page on), never an error;
- CSV/XLSX downloads: more than ``max_export_rows`` matched rows without an explicit ``limit``
  is a 400 ``too-many-rows`` (page with ``limit``/``offset``), not a silently cut file;
- report exports (``/exports/...``): jobs (api.jobs), ``export_workers`` built at once and
  ``export_queue`` waiting; one more is a 429 ``too-many-jobs`` with ``Retry-After``;
- request bodies: more than ``max_body_bytes`` is a 413 ``body-too-large`` (the API reads only
  the sign-in form);
- failed sign-ins: ``login_attempts`` per ``login_window_s`` and client, then 429;
- vector tiles: a tile covers more ground at low zoom, so it is thinned instead of refused: at
  most ``MAX_FEATURES`` features per tile and layer, and up to zoom ``LOW_ZOOM`` at most
  ``LINE_BUDGET`` lines or areas (the longest).
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from buque.api.problems import PROBLEM, TYPE_BASE
from buque.api.settings import Settings
from buque.geo.tiles import LINE_BUDGET, LOW_ZOOM, MAX_FEATURES


def limits_markdown(s: Settings) -> str:
    """The limits of these settings, for the API description."""
    return (
        "\n\n**Limits** (each answered with a problem document that names it):\n"
        f"- page size: `limit` up to {s.max_limit} (larger values are capped to it; "
        f"default {s.default_limit});\n"
        f"- CSV/XLSX downloads: at most {s.max_export_rows:,} rows without `limit` "
        "(`max_export_rows`; more is a 400 `too-many-rows`: page with `limit` and `offset`);\n"
        f"- report exports (`/exports/...`): jobs, at most {s.export_workers} built at once per "
        f"server process and {s.export_queue} waiting (`export_workers`, `export_queue`; one "
        "more is a 429 `too-many-jobs` with `Retry-After`);\n"
        f"- request bodies: at most {s.max_body_bytes:,} bytes (`max_body_bytes`; 413 "
        "`body-too-large`);\n"
        f"- failed sign-ins: {s.login_attempts} per {s.login_window_s:g} s and client "
        "(`login_attempts`, `login_window_s`; then 429 `too-many-sign-ins` with "
        "`Retry-After`);\n"
        f"- vector tiles: at most {MAX_FEATURES} features per tile and layer, and up to zoom "
        f"{LOW_ZOOM} (tiles of a county or more) at most {LINE_BUDGET} lines or areas, the "
        "longest: large areas at low zoom are thinned, not refused."
    )



class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with a 413 problem document
    (by ``Content-Length`` up front, or while a body without one is read)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max = app, max_bytes

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = json.dumps({"type": TYPE_BASE + "body-too-large", "title": "Content Too Large",
                           "status": 413, "detail": f"request bodies are limited to {self.max} "
                           "bytes (max_body_bytes)", "instance": scope.get("path", ""),
                           "limit": self.max}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", PROBLEM.encode()),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.max
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(scope, send)
                    return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max:
                    raise _TooLarge
            return msg

        async def tracked(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await self._refuse(scope, send)
