"""Offline tile packages: the gap layers of a run as one PMTiles (v3) archive.

Only tiles that hold at least one feature are rendered (found in bulk from the features'
bounds, per zoom); each tile holds every gap layer (villages, roads, power, ...), rendered by
:mod:`geo.tiles` exactly as the server renders them, gzip-compressed, written in tile-id order
(a clustered archive that any PMTiles reader, e.g. MapLibre's pmtiles protocol, can use with no
server).
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import shapely
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

from buque.geo.tiles import WEB_MERCATOR_HALF, TileLayer

Progress = Callable[[int, int], None]


def occupied_tiles(layer: TileLayer, z: int) -> np.ndarray:
    """(N, 2) array of the x, y of tiles at zoom ``z`` touched by the layer's features."""
    if len(layer.geoms) == 0 or not layer.minzoom <= z <= layer.maxzoom:
        return np.zeros((0, 2), dtype=np.int64)
    b = shapely.bounds(layer.geoms)
    size = 2 * WEB_MERCATOR_HALF / (1 << z)
    top = (1 << z) - 1
    x0 = np.clip(np.floor((b[:, 0] + WEB_MERCATOR_HALF) / size), 0, top).astype(np.int64)
    x1 = np.clip(np.floor((b[:, 2] + WEB_MERCATOR_HALF) / size), 0, top).astype(np.int64)
    y0 = np.clip(np.floor((WEB_MERCATOR_HALF - b[:, 3]) / size), 0, top).astype(np.int64)
    y1 = np.clip(np.floor((WEB_MERCATOR_HALF - b[:, 1]) / size), 0, top).astype(np.int64)
    nx, ny = x1 - x0 + 1, y1 - y0 + 1
    count = nx * ny
    f = np.repeat(np.arange(len(b)), count)
    k = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    xy = np.column_stack([x0[f] + k % nx[f], y0[f] + k // nx[f]])
    return np.unique(xy, axis=0)


def write_pmtiles(layers: dict[str, TileLayer], out: Path, *, minzoom: int = 0, maxzoom: int = 14,
                  attribution: str = "", name: str = "Buque gap map",
                  progress: Progress | None = None) -> dict[str, int]:
    """Write ``layers`` as a PMTiles archive; returns counts (tiles written, empty skipped)."""
    out = Path(out)
    tiles: list[tuple[int, int, int, int]] = []
    for z in range(minzoom, maxzoom + 1):
        xy = np.unique(np.concatenate([occupied_tiles(lyr, z) for lyr in layers.values()]),
                       axis=0)
        tiles.extend((zxy_to_tileid(z, int(x), int(y)), z, int(x), int(y)) for x, y in xy)
    tiles.sort()
    written = skipped = 0
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "wb") as f:
        writer = Writer(f)
        for n, (tid, z, x, y) in enumerate(tiles):
            body = b"".join(lyr.render(z, x, y) for lyr in layers.values())
            if body:
                writer.write_tile(tid, gzip.compress(body, compresslevel=6, mtime=0))
                written += 1
            else:
                skipped += 1
            if progress:
                progress(n + 1, len(tiles))
        if written == 0:
            raise ValueError("nothing to write: every tile is empty")
        lon0, lat0, lon1, lat1 = _bounds(layers)
        header = {
            "tile_type": TileType.MVT, "tile_compression": Compression.GZIP,
            "min_lon_e7": int(lon0 * 1e7), "min_lat_e7": int(lat0 * 1e7),
            "max_lon_e7": int(lon1 * 1e7), "max_lat_e7": int(lat1 * 1e7),
            "center_zoom": min(maxzoom, 10), "center_lon_e7": int((lon0 + lon1) / 2 * 1e7),
            "center_lat_e7": int((lat0 + lat1) / 2 * 1e7),
        }
        metadata = {
            "name": name, "attribution": attribution, "format": "pbf",
            "vector_layers": [{"id": k, "minzoom": minzoom, "maxzoom": maxzoom,
                               "fields": {c: "String" for c in lyr.props.columns}}
                              for k, lyr in layers.items()],
        }
        writer.finalize(header, metadata)
    tmp.replace(out)
    return {"tiles": written, "empty": skipped}


def _bounds(layers: dict[str, TileLayer]) -> tuple[float, float, float, float]:
    b = np.array([lyr.bounds_lonlat for lyr in layers.values() if len(lyr.geoms)])
    lon0, lat0 = np.nanmin(b[:, 0]), np.nanmin(b[:, 1])
    lon1, lat1 = np.nanmax(b[:, 2]), np.nanmax(b[:, 3])
    return (float(lon0), float(lat0), float(lon1), float(lat1)) if not math.isnan(lon0) \
        else (-180.0, -85.0, 180.0, 85.0)
