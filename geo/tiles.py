"""Vector tiles (Mapbox Vector Tile 2.1) from GeoDataFrames: tile maths, clipping, thinning.

A :class:`TileLayer` is built once per layer (Web Mercator coordinates, an STRtree, a rank for
thinning) and then renders any tile with bulk shapely operations: one tree query for the tile
(plus buffer), clipping and simplification of all hits at once, grid thinning of points at low
zoom (the highest-ranked point per cell survives, so villages with more gaps stay visible), and
one affine transform into tile coordinates, then the vectorised encoder of :mod:`geo.mvt`
(polygons fall back to ``mapbox_vector_tile``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pandas as pd
import shapely

from buque.geo.mvt import PropertyTable, encode_layer
from buque.geo.villages import gap_class

EXTENT = 4096
BUFFER = 64  # tile units of buffer around each tile (MapLibre's default clipping margin)
WEB_MERCATOR_HALF = 20037508.342789244
MAX_FEATURES = 4000  # per tile and layer, after thinning
MIN_SIZE_PX = 2.0  # lines shorter (areas smaller) than this many pixels are left out
LOW_ZOOM = 9  # up to this zoom a tile spans a county or more ...
LINE_BUDGET = 1500  # ... and keeps only this many lines/areas, the highest-ranked (longest)


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """Web Mercator bounds (minx, miny, maxx, maxy) of an XYZ tile."""
    size = 2 * WEB_MERCATOR_HALF / (1 << z)
    minx = -WEB_MERCATOR_HALF + x * size
    maxy = WEB_MERCATOR_HALF - y * size
    return minx, maxy - size, minx + size, maxy


def valid_tile(z: int, x: int, y: int) -> bool:
    return 0 <= z <= 24 and 0 <= x < (1 << z) and 0 <= y < (1 << z)


def lonlat_to_mercator(xy: np.ndarray) -> np.ndarray:
    """(N, 2) lon/lat -> Web Mercator metres (latitudes clipped to ±85.0511°)."""
    lon = np.radians(xy[:, 0])
    lat = np.radians(np.clip(xy[:, 1], -85.05112878, 85.05112878))
    r = 6378137.0
    return np.column_stack([r * lon, r * np.log(np.tan(math.pi / 4 + lat / 2))])


def to_mercator(geoms: np.ndarray) -> np.ndarray:
    geoms = np.asarray(geoms, dtype=object)
    return shapely.set_coordinates(geoms.copy(), lonlat_to_mercator(shapely.get_coordinates(geoms)))


@dataclass
class TileLayer:
    """One layer ready for tiling: Mercator geometries, properties, index, thinning rank."""

    name: str
    geoms: np.ndarray
    props: pd.DataFrame
    rank: np.ndarray
    minzoom: int = 0
    maxzoom: int = 16

    @classmethod
    def from_frame(cls, name: str, gdf: gpd.GeoDataFrame, columns: list[str],
                   rank: np.ndarray | None = None, minzoom: int = 0, maxzoom: int = 16
                   ) -> TileLayer:
        """``columns`` become feature properties; a higher ``rank`` survives thinning first."""
        geoms = to_mercator(gdf.geometry.to_numpy())
        props = gdf[[c for c in columns if c in gdf.columns]].reset_index(drop=True)
        r = np.zeros(len(gdf)) if rank is None else np.asarray(rank, dtype=float)
        layer = cls(name=name, geoms=geoms, props=props, rank=r, minzoom=minzoom, maxzoom=maxzoom)
        layer._tree = shapely.STRtree(geoms)
        layer._table = PropertyTable(props)
        layer._is_point = shapely.get_type_id(geoms) == 0
        layer._size = np.maximum(shapely.length(geoms), np.sqrt(shapely.area(geoms)))
        b = shapely.total_bounds(geoms) if len(geoms) else np.array([np.nan] * 4)
        layer.bounds_mercator = tuple(float(v) for v in b)
        return layer

    @property
    def bounds_lonlat(self) -> tuple[float, float, float, float]:
        minx, miny, maxx, maxy = self.bounds_mercator
        r = 6378137.0
        lat = lambda y: math.degrees(2 * math.atan(math.exp(y / r)) - math.pi / 2)  # noqa: E731
        return (math.degrees(minx / r), lat(miny), math.degrees(maxx / r), lat(maxy))

    def select(self, z: int, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the features drawn in a tile and their geometries in tile coordinates."""
        if not self.minzoom <= z <= self.maxzoom or len(self.geoms) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
        minx, miny, maxx, maxy = tile_bounds(z, x, y)
        scale = EXTENT / (maxx - minx)
        pad = BUFFER / scale
        box = (minx - pad, miny - pad, maxx + pad, maxy + pad)
        idx = np.sort(self._tree.query(shapely.box(*box)))
        if len(idx) == 0:
            return idx, np.zeros(0, dtype=object)
        # lines and areas smaller than MIN_SIZE_PX pixels vanish at this zoom: drop them first
        visible = self._is_point[idx] | (self._size[idx] * scale >= MIN_SIZE_PX * EXTENT / 256)
        idx = idx[visible]
        lines = ~self._is_point[idx]
        if z <= LOW_ZOOM and lines.sum() > LINE_BUDGET:
            li = idx[lines]
            keep = li[np.argsort(-self.rank[li], kind="stable")[:LINE_BUDGET]]
            idx = np.sort(np.concatenate([idx[~lines], keep]))
        geoms = self.geoms[idx]
        pts = self._is_point[idx]
        if (~pts).any():
            clipped = geoms.copy()
            clipped[~pts] = shapely.clip_by_rect(geoms[~pts], *box)
            # simplify to a quarter of a tile unit; drop what vanishes at this zoom
            clipped[~pts] = shapely.simplify(clipped[~pts], 0.25 / scale, preserve_topology=False)
            keep = ~shapely.is_empty(clipped)
            idx, geoms, pts = idx[keep], clipped[keep], pts[keep]
        if pts.any() and pts.sum() > MAX_FEATURES // 4:
            idx, geoms, pts = self._thin(idx, geoms, pts, z, minx, maxy, scale)
        if len(idx) > MAX_FEATURES:
            top = np.sort(np.argsort(-self.rank[idx], kind="stable")[:MAX_FEATURES])
            idx, geoms = idx[top], geoms[top]
        tile = shapely.transform(geoms, lambda c: np.column_stack(
            [(c[:, 0] - minx) * scale, (maxy - c[:, 1]) * scale]))
        return idx, tile

    def _thin(self, idx: np.ndarray, geoms: np.ndarray, pts: np.ndarray, z: int, minx: float,
              maxy: float, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keep the highest-ranked point per grid cell (cells shrink as zoom grows)."""
        cell = max(2, 16 >> max(0, (z - 7) // 2)) * (EXTENT / 256)  # 16 px up to z8, then finer
        xy = shapely.get_coordinates(geoms[pts])
        cx = np.floor((xy[:, 0] - minx) * scale / cell).astype(np.int64)
        cy = np.floor((maxy - xy[:, 1]) * scale / cell).astype(np.int64)
        key = (cx + 1000) * 100000 + (cy + 1000)
        pi = np.flatnonzero(pts)
        order = np.lexsort((pi, -self.rank[idx[pi]], key))
        first = np.r_[True, key[order][1:] != key[order][:-1]]
        keep = np.ones(len(idx), dtype=bool)
        keep[pi] = False
        keep[pi[order[first]]] = True
        return idx[keep], geoms[keep], pts[keep]

    def render(self, z: int, x: int, y: int) -> bytes:
        """The MVT bytes of one tile (b"" when no feature falls in it)."""
        idx, geoms = self.select(z, x, y)
        if len(idx) == 0:
            return b""
        if not np.isin(shapely.get_type_id(geoms), (0, 1, 5)).all():
            return _encode_generic(self.name, geoms, self.props.iloc[idx], idx)
        return encode_layer(self.name, geoms, self._table, ids=idx, extent=EXTENT, rows=idx)


def draw_minzoom(layer: TileLayer) -> np.ndarray:
    """Per feature, the zoom from which :meth:`TileLayer.select` draws it (``maxzoom + 1``:
    never), for tile servers that filter ``minzoom <= z`` instead of thinning per tile.

    A feature counts as drawn at a zoom when it is selected in its home tile (the tile of its
    bounding box's centre); its minzoom is the lowest zoom from which it is drawn at every zoom
    up to ``maxzoom``. Only tiles where thinning can happen (more points than a quarter of
    :data:`MAX_FEATURES` in the tile and its neighbours, more than :data:`LINE_BUDGET` lines up
    to :data:`LOW_ZOOM`, more than :data:`MAX_FEATURES` features) are rendered, one
    ``select`` per such tile; elsewhere only the size rule applies, computed in closed form.
    Tiles are nested and their buffer shrinks with zoom, so once no tile of a zoom can thin, no
    tile of a higher zoom can either.
    """
    n = len(layer.geoms)
    out = np.full(n, layer.minzoom, dtype=np.int64)
    if n == 0:
        return out
    b = shapely.bounds(layer.geoms)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    pts = layer._is_point
    # the size rule: visible from the zoom where the feature spans MIN_SIZE_PX pixels
    with np.errstate(divide="ignore"):
        need = np.ceil(np.log2(MIN_SIZE_PX * 2 * WEB_MERCATOR_HALF / (256 * layer._size)) - 1e-9)
    need = np.where(pts | ~np.isfinite(need), 0, np.clip(need, 0, 99)).astype(np.int64)
    for z in range(layer.minzoom, layer.maxzoom + 1):
        side = 2 * WEB_MERCATOR_HALF / (1 << z)
        tx = np.clip(np.floor((cx + WEB_MERCATOR_HALF) / side), 0, (1 << z) - 1).astype(np.int64)
        ty = np.clip(np.floor((WEB_MERCATOR_HALF - cy) / side), 0, (1 << z) - 1).astype(np.int64)
        key = tx * (1 << z) + ty
        ukey, inv = np.unique(key, return_inverse=True)
        ux, uy = ukey // (1 << z), ukey % (1 << z)

        def around(counts: np.ndarray, ux: np.ndarray = ux, uy: np.ndarray = uy,
                   ukey: np.ndarray = ukey, z: int = z) -> np.ndarray:
            """Per home tile, the count over it and its 8 neighbours."""
            total = np.zeros(len(ukey), dtype=np.int64)
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    k = (ux + dx) * (1 << z) + (uy + dy)
                    at = np.clip(np.searchsorted(ukey, k), 0, len(ukey) - 1)
                    total += np.where(ukey[at] == k, counts[at], 0)
            return total

        n_pts = around(np.bincount(inv, weights=pts, minlength=len(ukey)).astype(np.int64))
        n_all = around(np.bincount(inv, minlength=len(ukey)))
        dense = (n_pts > MAX_FEATURES // 4) | (n_all > MAX_FEATURES)
        if z <= LOW_ZOOM:
            dense |= (n_all - n_pts) > 0
        drawn = need <= z
        order = np.argsort(inv, kind="stable")
        starts = np.searchsorted(inv[order], np.arange(len(ukey) + 1))
        for t in np.flatnonzero(dense):  # one render per dense tile, not per feature
            members = order[starts[t]:starts[t + 1]]
            idx, _ = layer.select(z, int(ux[t]), int(uy[t]))
            drawn[members] &= np.isin(members, idx)
        out[~drawn] = z + 1
        if not dense.any() and z > LOW_ZOOM:
            break
    return np.maximum(out, np.minimum(need, layer.maxzoom + 1))


def _encode_generic(name: str, geoms: np.ndarray, props: pd.DataFrame, idx: np.ndarray) -> bytes:
    """Polygons and mixed layers go through ``mapbox_vector_tile`` (winding order, rings)."""
    feats = [{"geometry": g, "properties": p, "id": int(i)}
             for g, p, i in zip(geoms, _records(props), idx, strict=True)]
    return mapbox_vector_tile.encode(
        [{"name": name, "features": feats}],
        default_options={"extents": EXTENT, "y_coord_down": True, "quantize_bounds": None,
                         "check_winding_order": True})


def _records(props: pd.DataFrame) -> list[dict]:
    """Row dicts without nulls (MVT has no null), numpy scalars as Python values."""
    cols = {}
    for c in props.columns:
        s = props[c]
        if pd.api.types.is_float_dtype(s):
            cols[c] = [None if v != v else round(v, 1) for v in s.to_numpy(dtype=float)]
        else:
            cols[c] = s.astype(object).where(s.notna(), None).tolist()
    names = list(cols)
    return [{k: v for k, v in zip(names, row, strict=True) if v is not None}
            for row in zip(*cols.values(), strict=True)] if names else [{} for _ in range(len(props))]


#: properties carried by each gap-map layer (those present in the run are used)
VILLAGE_PROPS = ["code", "name", "level", "county", "township", "population", "households",
                 "poor", "exit_year", "missing", "n_missing", "gap_class"]
LAYER_PROPS = {
    "roads": ["id", "name", "surface", "width_m", "highway"],
    "power": ["id", "kind", "voltage"],
    "water": ["id", "name", "kind", "safe"],
    "clinics": ["id", "name", "kind", "standardized"],
    "broadband": ["id", "name", "kind", "radius_m"],
    "boundaries": ["id", "name", "level"],
}


def gap_tile_layers(villages: gpd.GeoDataFrame, layers: dict[str, gpd.GeoDataFrame],
                    indicators: list[str]) -> dict[str, TileLayer]:
    """The gap map's layers: villages at their reference points (ranked by number of gaps, then
    population, so thinning keeps the villages that lack most) and each archived input layer."""
    pts = gpd.GeoDataFrame(villages.drop(columns=villages.geometry.name),
                           geometry=gpd.points_from_xy(villages["ref_lon"], villages["ref_lat"]),
                           crs="EPSG:4326")
    pts["gap_class"] = gap_class(pts, indicators)  # the map's colour reads it (api.mapstyle)
    cols = VILLAGE_PROPS + [c for k in indicators for c in (k, f"{k}_distance_m")]
    rank = (pts["n_missing"].fillna(0).to_numpy(dtype=float) * 1e9
            + pts["population"].astype("Float64").fillna(0).to_numpy(dtype=float))
    out = {"villages": TileLayer.from_frame("villages", pts, cols, rank=rank)}
    for kind, gdf in layers.items():
        if kind == "boundaries":  # outlines: the areas' boundaries as lines
            gdf = gdf.set_geometry(gdf.geometry.boundary)
        cols = LAYER_PROPS.get(kind, ["id"]) + [c for c in gdf.columns if c.startswith("evidence_")]
        size = np.maximum(shapely.length(gdf.geometry.to_numpy()), 1.0)
        out[kind] = TileLayer.from_frame(kind, gdf, cols, rank=size)
    return out
