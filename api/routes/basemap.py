"""The office's own basemap (``buque serve --basemap FILE``): ``/basemap/{z}/{x}/{y}.{ext}`` and
its TileJSON ``/basemap.json``, read from the file by :mod:`geo.basemap`. The gap map's style
draws it under the gap layers (:func:`api.mapstyle.basemap_layers`)."""

from __future__ import annotations

import gzip
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from buque.api.deps import viewer
from buque.api.mapstyle import basemap_of, tile_url
from buque.api.openapi import problems
from buque.api.problems import Problem
from buque.api.routes.tiles import accepts_gzip
from buque.geo.basemap import Basemap

router = APIRouter(tags=["Basemap"], dependencies=[Depends(viewer)])


def _need(request: Request) -> Basemap:
    bm = basemap_of(request)
    if bm is None:
        raise Problem(404, "this server has no basemap (buque serve --basemap FILE)",
                      kind="no-basemap")
    return bm


@router.get("/basemap.json", responses=problems(404))
def basemap_tilejson(request: Request) -> dict[str, Any]:
    """TileJSON 3.0 of the server's basemap (404 when it has none)."""
    bm = _need(request)
    b = bm.bounds
    out: dict[str, Any] = {
        "tilejson": "3.0.0", "name": bm.name or bm.path.stem, "scheme": "xyz",
        "tiles": [tile_url(request, bm)], "minzoom": bm.minzoom, "maxzoom": bm.maxzoom,
        "bounds": list(b), "attribution": bm.attribution, "format": bm.fmt,
    }
    if bm.kind == "vector":
        out["vector_layers"] = bm.vector_layers
    return out


@router.get("/basemap/{z}/{x}/{y}.{ext}", response_class=Response,
            responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {},
                                         "application/vnd.mapbox-vector-tile": {}}},
                       204: {"description": "no tile there"}, **problems(404)})
def basemap_tile(request: Request, z: Annotated[int, Path(ge=0, le=30)],
                 x: Annotated[int, Path(ge=0)], y: Annotated[int, Path(ge=0)],
                 ext: Annotated[str, Path(pattern=r"^(png|jpg|webp|pbf)$")]) -> Response:
    """One basemap tile as stored in the file."""
    bm = _need(request)
    if ext != bm.fmt:
        raise Problem(404, f"the basemap's tiles are .{bm.fmt}, not .{ext}", kind="no-such-tile")
    if x >= 1 << z or y >= 1 << z:
        raise Problem(404, f"tile {z}/{x}/{y} does not exist (x and y must be below 2^z)",
                      kind="no-such-tile")
    headers = {"Cache-Control": "private, max-age=86400"}
    body = bm.tile(z, x, y)
    if not body:
        return Response(status_code=204, headers=headers)
    if bm.encoding == "gzip":
        if accepts_gzip(request.headers.get("accept-encoding")):
            headers["Content-Encoding"] = "gzip"
        else:
            body = gzip.decompress(body)
        headers["Vary"] = "Accept-Encoding"
    return Response(body, media_type=bm.media, headers=headers)
