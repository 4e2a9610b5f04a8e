"""Vector tiles of the gap map: ``/tiles/{layer}/{z}/{x}/{y}.mvt``, TileJSON, the MapLibre style.

Tile layers are built once per run (first request, or at start-up for the newest run); a tile
is rendered by :mod:`geo.tiles`, gzipped, and kept in an in-memory LRU cache. A tile is sent
gzip-encoded only to a client whose ``Accept-Encoding`` takes gzip (browsers do; GDAL's and
Python's plain clients may not), else as is, with ``Vary: Accept-Encoding``. Empty tiles are
answered ``204 No Content``, every time. ETags are per run, tile and encoding, so a browser
revalidates cheaply and a new run never serves a stale tile.
"""

from __future__ import annotations

import gzip
import logging
import threading
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from buque.api.deps import Run, viewer
from buque.api.problems import Problem
from buque.api.store import ServedRun
from buque.geo.query import InputChanged
from buque.geo.tiles import TileLayer, gap_tile_layers, valid_tile

log = logging.getLogger("buque.api")
router = APIRouter(tags=["Tiles"], dependencies=[Depends(viewer)])
CACHE_TILES = 20000
MAX_ZOOM = 16
MVT = "application/vnd.mapbox-vector-tile"


class TileCache:
    """Tile layers per run, and an LRU cache of rendered (gzipped) tiles."""

    def __init__(self, size: int = CACHE_TILES) -> None:
        self.size = size
        self._layers: dict[str, dict[str, TileLayer]] = {}
        self._tiles: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def layers(self, run: ServedRun) -> dict[str, TileLayer]:
        if run.tiles is not None:  # rendered by the store (PostGIS)
            return run.tiles.layers()
        with self._lock:
            if run.run_id not in self._layers:
                data = run.data
                inputs = {}
                for k in data.input_layers():
                    try:
                        inputs[k] = data.input_layer(k)
                    except (InputChanged, KeyError, OSError, ValueError) as e:
                        log.warning("tiles: layer %s of run %s left out: %s", k, run.run_id, e)
                self._layers[run.run_id] = gap_tile_layers(data.tables.villages, inputs,
                                                           data.indicators)
            return self._layers[run.run_id]

    def tile(self, run: ServedRun, layer: str, z: int, x: int, y: int) -> bytes:
        key = (run.run_id, layer, z, x, y)
        with self._lock:
            hit = self._tiles.get(key)
            if hit is not None:
                self._tiles.move_to_end(key)
                return hit
        raw = (run.tiles.render(layer, z, x, y) if run.tiles is not None
               else self.layers(run)[layer].render(z, x, y))
        body = gzip.compress(raw, compresslevel=5) if raw else b""
        with self._lock:
            self._tiles[key] = body
            if len(self._tiles) > self.size:
                self._tiles.popitem(last=False)
        return body


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header takes gzip (RFC 9110 12.5.3: ``gzip``, ``x-gzip``
    or ``*``, with a q-value above 0). No header: no encoding is asked for, none is used."""
    if not accept_encoding:
        return False
    ok: dict[str, bool] = {}
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        ok[name.strip().lower()] = q > 0
    for name in ("gzip", "x-gzip"):
        if name in ok:
            return ok[name]
    return ok.get("*", False)


def cache_of_app(app: Any) -> TileCache:
    cache = getattr(app.state, "tiles", None)
    if cache is None:
        cache = app.state.tiles = TileCache()
    return cache


def cache_of(request: Request) -> TileCache:
    return cache_of_app(request.app)


Cache = Annotated[TileCache, Depends(cache_of)]
LayerName = Annotated[str, Path(pattern=r"^[a-z_]{1,32}$",
                                description="villages, roads, power, water, clinics, broadband")]


def _layer(cache: TileCache, run: ServedRun, layer: str) -> TileLayer:
    layers = cache.layers(run)
    if layer not in layers:
        raise Problem(404, f"no tile layer {layer!r}; this run has: {', '.join(layers)}",
                      kind="unknown-layer")
    return layers[layer]


@router.get("/tiles/{layer}/{z}/{x}/{y}.mvt", response_class=Response,
            responses={200: {"content": {MVT: {}}}, 204: {"description": "empty tile"},
                       304: {"description": "not modified"},
                       404: {"description": "no such layer, or a tile outside the grid"}})
def tile(request: Request, layer: LayerName, run: Run, cache: Cache,
         z: Annotated[int, Path(ge=0, le=24)], x: Annotated[int, Path(ge=0)],
         y: Annotated[int, Path(ge=0)]) -> Response:
    """One Mapbox Vector Tile (2.1) of a gap-map layer, gzip-encoded when the client accepts it."""
    _layer(cache, run, layer)
    if not valid_tile(z, x, y):
        raise Problem(404, f"tile {z}/{x}/{y} does not exist (x and y must be below 2^z)",
                      kind="no-such-tile")
    gz = accepts_gzip(request.headers.get("accept-encoding"))
    etag = f'"{run.run_id}-{layer}-{z}-{x}-{y}{"-gz" if gz else ""}"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=3600", "X-Buque-Run": run.run_id,
               "Vary": "Accept-Encoding"}
    if etag in (t.strip() for t in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    body = cache.tile(run, layer, z, x, y)
    if not body:
        return Response(status_code=204, headers=headers)
    if not gz:
        return Response(gzip.decompress(body), media_type=MVT, headers=headers)
    return Response(body, media_type=MVT, headers={**headers, "Content-Encoding": "gzip"})


def _tiles_url(request: Request, layer: str, run: ServedRun) -> str:
    base = str(request.base_url).rstrip("/")
    return f"{base}/tiles/{layer}/{{z}}/{{x}}/{{y}}.mvt?run={run.run_id}"


@router.get("/tiles/{layer}.json")
def tilejson(request: Request, layer: LayerName, run: Run, cache: Cache) -> dict[str, Any]:
    """TileJSON 3.0 of a gap-map layer."""
    lyr = _layer(cache, run, layer)
    b = lyr.bounds_lonlat
    fields = {c: _field_type(lyr.props[c].dtype) for c in lyr.props.columns}
    return {
        "tilejson": "3.0.0", "name": layer, "version": "1.0.0", "scheme": "xyz",
        "tiles": [_tiles_url(request, layer, run)],
        "minzoom": lyr.minzoom, "maxzoom": MAX_ZOOM, "bounds": list(b),
        "center": [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, 8],
        "attribution": " · ".join(run.data.manifest.get("attribution", [])),
        "vector_layers": [{"id": layer, "fields": fields, "minzoom": lyr.minzoom,
                           "maxzoom": MAX_ZOOM}],
    }


def _field_type(dtype: Any) -> str:
    kind = getattr(dtype, "kind", "O")
    return {"b": "Boolean", "i": "Number", "u": "Number", "f": "Number"}.get(kind, "String")


@router.get("/styles/gaps.json")
def style(request: Request, run: Run, cache: Cache) -> dict[str, Any]:
    """The MapLibre style of the gap map (no external sources, glyphs or sprites), over the
    server's own basemap when it has one."""
    from buque.api.mapstyle import basemap_of, gap_style, tile_url

    layers = cache.layers(run)
    bm = basemap_of(request)
    return gap_style({k: _tiles_url(request, k, run) for k in layers},
                     " · ".join(run.data.manifest.get("attribution", [])), bm,
                     tile_url(request, bm) if bm is not None else "")
