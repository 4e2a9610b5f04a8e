"""The gap engine: profile x villages x layers -> one status per (village, indicator).

For each indicator the layer's features are split by the profile's evidence filter into
qualifying (pass), unverifiable (unknown attribute) and non-qualifying (fail). A village is
``met`` when a qualifying feature satisfies the rule, ``unknown`` when only an unverifiable one
does (or the layer was not provided), else ``missing``. ``distance_m`` is always to the nearest
qualifying feature from the village's reference point, measured in the village's own UTM zone
(see :mod:`geo.metric` for the method and its accuracy). ``candidate_id`` is the unverifiable or
non-qualifying feature that satisfies the rule, and ``failed`` says which of the profile's
evidence conditions it fails (or cannot be checked on), e.g. ``width_m 3.0 < 3.5`` (see
:func:`geo.evidence.explain`); null when there is no candidate. All queries are bulk queries per
UTM zone; nothing loops over villages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.columns import codes, strings
from geo.evidence import FAIL, PASS, UNKNOWN, evaluate, evaluate_all, explain
from geo.metric import (
    MARGIN_DEG,
    NEAR_MARGIN_DEG,
    Band,
    bands_of,
    in_lon_range,
    outside_bound_m,
    project,
    transform_xy,
)
from geo.nearest import FeatureIndex
from geo.network import RoadGraph
from layers.profile import Indicator, Profile

GAP_COLUMNS = ["village_code", "level", "indicator", "status", "distance_m", "evidence_id",
               "candidate_id", "candidate_distance_m", "network_m", "reason", "failed"]
STATUSES = ("met", "missing", "unknown")

#: reason codes written to gaps.parquet, and what they mean
REASONS = {
    "within_threshold": "a qualifying feature lies within the threshold",
    "within_network_threshold": "a qualifying feature lies within the threshold along the roads",
    "inside_village": "a qualifying feature lies inside the village polygon",
    "covered": "inside a qualifying coverage area / within a feature's radius",
    "unverified_nearby": "only features whose attributes are unknown satisfy the rule",
    "non_qualifying_nearby": "features satisfy the rule but do not qualify (e.g. unpaved road, "
                             "non-standardized clinic)",
    "none_within_threshold": "the nearest qualifying feature is beyond the threshold",
    "no_qualifying_feature": "no qualifying feature in reach at all",
    "layer_not_provided": "the project has no layer for this indicator",
    "rule_needs_polygon": "the rule needs a village polygon and no fallback distance is set",
}

#: ``progress(done, total, label)``: villages x indicators assessed so far, of ``total``
Progress = Callable[[int, int, str], None]
_STATUS = np.array(["met", "missing", "unknown"], dtype=object)
_REASON = np.array(list(REASONS), dtype=object)
_R = {r: np.int8(i) for i, r in enumerate(REASONS)}
THREADS = 2  # indicators assessed side by side


@dataclass
class _Result:
    """Per-village arrays for one indicator (only applicable villages are written out)."""

    n: int

    def __post_init__(self) -> None:
        n = self.n
        self.status = np.full(n, 2, dtype=np.int8)  # codes into _STATUS
        self.reason = np.full(n, _R["layer_not_provided"], dtype=np.int8)  # codes into _REASON
        self.dist = np.full(n, np.nan)
        self.evid = np.full(n, -1, dtype=np.int64)
        self.cand = np.full(n, -1, dtype=np.int64)
        self.cand_dist = np.full(n, np.nan)
        self.net = np.full(n, np.nan)


def applicable(villages: pd.DataFrame, ind: Indicator) -> np.ndarray:
    """Which villages an indicator applies to: its levels, then any per-level condition."""
    levels = list(dict.fromkeys([*ind.levels, *ind.applies]))
    level = codes(villages["level"], levels)
    mask = np.isin(level, [levels.index(lv) for lv in ind.levels])
    for lvl, cond in ind.applies.items():
        sel = level == levels.index(lvl)
        if sel.any():
            mask[sel] &= evaluate(villages.loc[sel], cond) != FAIL
    return mask


def feature_radius(gdf: gpd.GeoDataFrame, default: float) -> np.ndarray:
    """Coverage radius per feature: ``radius_m`` if given; else 0 for areas, ``default`` else."""
    r = pd.to_numeric(gdf.get("radius_m", pd.Series(np.nan, index=gdf.index)),
                      errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    area = shapely.get_dimensions(gdf.geometry.to_numpy()) == 2
    return np.where(np.isfinite(r), r, np.where(area, 0.0, default))


def evidence_classes(layers: dict[str, gpd.GeoDataFrame], profile: Profile
                     ) -> dict[str, np.ndarray]:
    """Per indicator, each feature of its layer as PASS, FAIL or UNKNOWN (see geo.evidence)."""
    return {i.key: evaluate_all(layers[i.layer], i.evidence)
            for i in profile.indicators.values() if i.layer in layers}


def assess(villages: gpd.GeoDataFrame, layers: dict[str, gpd.GeoDataFrame], profile: Profile,
           progress: Progress | None = None, bands: list[Band] | None = None,
           classes: dict[str, np.ndarray] | None = None, threads: int = THREADS
           ) -> pd.DataFrame:
    """Assess every applicable (village, indicator) pair.

    ``villages`` needs ``code``, ``level``, ``ref_lon``, ``ref_lat``, geometry (EPSG:4326) and
    the attributes the profile's applicability conditions use. ``layers`` maps layer kinds to
    canonical GeoDataFrames (EPSG:4326, with ``id``); a kind that is absent was not provided.
    Returns a long table with :data:`GAP_COLUMNS` and ``_v``, the village's position in
    ``villages`` (for joining back without a lookup by code). ``bands`` fixes the metric CRSs
    (default: each village's own UTM zone, :func:`geo.metric.bands_of`, so that a village's
    result does not depend on the other villages of the run); ``classes`` are the layers'
    :func:`evidence_classes` when the caller already has them. ``threads``: indicators assessed
    side by side (their numpy, GEOS and k-d tree work releases the GIL).
    """
    n = len(villages)
    lon = villages["ref_lon"].to_numpy(dtype=float)
    lat = villages["ref_lat"].to_numpy(dtype=float)
    lonlat = np.column_stack([lon, lat])
    vgeom = villages.geometry.to_numpy()
    is_poly = shapely.get_dimensions(vgeom) == 2
    inds = list(profile.indicators.values())
    masks = {i.key: applicable(villages, i) for i in inds}
    if classes is None:
        classes = evidence_classes(layers, profile)
    results = {i.key: _Result(n) for i in inds}
    total, done = int(sum(m.sum() for m in masks.values())), 0
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for z in bands if bands is not None else bands_of(lon, lat):
            band = _Band(z, layers, lonlat[z.members], vgeom, is_poly)
            jobs = {pool.submit(band.assess, ind, masks[ind.key], classes.get(ind.key),
                                results[ind.key]): ind for ind in inds}
            for job in as_completed(jobs):  # indicators of a band run side by side
                done += job.result()
                if progress:
                    progress(done, total, jobs[job].key)
    return _to_table(villages, layers, inds, masks, results)


class _Band:
    """One metric band's shared work, built once on first use (thread-safe): the layers'
    windows and indexes, road graphs, projected village polygons."""

    def __init__(self, z: Band, layers: dict[str, gpd.GeoDataFrame], lonlat: np.ndarray,
                 vgeom: np.ndarray, is_poly: np.ndarray) -> None:
        self.z, self.layers = z, layers
        self.ref_p = shapely.points(transform_xy(lonlat, z.crs))
        self.vgeom, self.is_poly = vgeom, is_poly
        # per member village: how far anything outside the narrow window is, at least
        self.near_bound = outside_bound_m(lonlat[:, 0], lonlat[:, 1], z.window(NEAR_MARGIN_DEG))
        self._cache: dict[tuple[str, str], object] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def _once(self, key: tuple[str, str], build: Callable[[], object]) -> object:
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]

    def positions(self, layer: str, margin_deg: float = MARGIN_DEG) -> np.ndarray:
        """Positions of the layer's features within ``margin_deg`` of the band."""
        return self._once((f"positions {margin_deg}", layer), lambda: np.flatnonzero(  # type: ignore[return-value]
            in_lon_range(self.layers[layer].geometry.to_numpy(), self.z.window(margin_deg))))

    def window(self, layer: str, margin_deg: float = MARGIN_DEG) -> tuple[np.ndarray, FeatureIndex]:
        """The layer's features within ``margin_deg`` of the band, and their index."""
        def build() -> tuple[np.ndarray, FeatureIndex]:
            win = self.positions(layer, margin_deg)
            return win, FeatureIndex(self.layers[layer].geometry.to_numpy()[win], self.z.crs).warm()
        return self._once((f"window {margin_deg}", layer), build)  # type: ignore[return-value]

    def graph(self, layer: str) -> RoadGraph:
        def build() -> RoadGraph:
            roads = self.layers[layer].geometry.to_numpy()[self.positions(layer)]
            return RoadGraph.build(project(roads, self.z.crs))
        return self._once(("graph", layer), build)  # type: ignore[return-value]

    def polygons(self, sel: np.ndarray) -> np.ndarray:
        """The band's selected villages' polygons, projected (None for point villages)."""
        members = self.z.members
        poly = self.is_poly[members]
        allp = self._once(("polygons", ""), lambda: np.full(len(members), None, dtype=object))
        with self._lock:  # project the ones not yet projected
            todo = sel & poly & np.equal(allp, None)
            allp[todo] = project(self.vgeom[members[todo]], self.z.crs)  # type: ignore[index]
        return allp[sel]  # type: ignore[index]

    def assess(self, ind: Indicator, mask: np.ndarray, cls: np.ndarray | None, res: _Result
               ) -> int:
        """Assess one indicator's villages in this band; returns how many."""
        z = self.z
        sel = mask[z.members]
        gidx = z.members[sel]
        n = len(gidx)
        if ind.layer not in self.layers or n == 0 or cls is None:
            return n
        graph = None
        if ind.rule == "within_network_distance":
            if ind.network_layer not in self.layers:
                return n  # unknown: the road network was not provided
            graph = self.graph(ind.network_layer)
        polys = self.polygons(sel) if ind.rule == "inside_village" else None
        pts, is_poly = self.ref_p[sel], self.is_poly[gidx]
        if ind.rule == "within_distance":
            # narrow window first; a village is settled there when its nearest qualifying
            # feature, and the rule's reach, are closer than anything outside the window
            win, layer_index = self.window(ind.layer, NEAR_MARGIN_DEG)
            _assess_zone(ind, pts, is_poly, polys, layer_index, win, cls[win], None, res, gidx)
            bound = self.near_bound[sel]
            redo = ~(res.dist[gidx] < bound) | (ind.reach_m >= bound)
            if not redo.any() or len(self.positions(ind.layer)) == len(win):
                return n  # settled, or the wide window holds nothing more
            gidx, pts, is_poly = gidx[redo], pts[redo], is_poly[redo]
            polys = None if polys is None else polys[redo]
        win, layer_index = self.window(ind.layer)
        radius = (feature_radius(self.layers[ind.layer].iloc[win], ind.default_radius_m or 0.0)
                  if ind.rule == "coverage" else None)
        _assess_zone(ind, pts, is_poly, polys, layer_index, win, cls[win], radius, res, gidx,
                     graph)
        return n


def _assess_zone(ind: Indicator, pts: np.ndarray, is_poly: np.ndarray, polys: np.ndarray | None,
                 layer_index: FeatureIndex, win: np.ndarray, cls: np.ndarray, radius: np.ndarray | None,
                 res: _Result, gidx: np.ndarray, graph: RoadGraph | None = None) -> None:
    """Fill ``res`` at ``gidx`` for one indicator in one band (all villages at once).

    ``pts`` and ``polys`` are projected to the band's CRS; ``layer_index`` indexes the layer's
    features near the band, ``win`` their positions in the layer; ``graph`` is the band's road
    graph for the network rule.
    """
    m = len(pts)
    sat: dict[np.int8, np.ndarray] = {}
    near_d: dict[np.int8, np.ndarray] = {}
    near_i: dict[np.int8, np.ndarray] = {}
    todo = np.ones(m, dtype=bool)  # villages still undecided: later classes only look at them
    net = np.full(m, np.nan)
    for c in (PASS, UNKNOWN, FAIL):
        member = cls == c
        sub = np.flatnonzero(member)
        d, i = np.full(m, np.nan), np.full(m, -1, dtype=np.int64)
        s = np.zeros(m, dtype=bool)
        q = np.flatnonzero(todo)
        if len(sub) and len(q):
            index = layer_index.subset(sub)
            if c == PASS:
                dq, iq = index.nearest(pts[q])
                iq = np.where(iq >= 0, sub[np.maximum(iq, 0)], -1)
            else:
                dq, iq = layer_index.nearest_within(pts[q], ind.reach_m, member)
            d[q], i[q] = dq, iq
            if ind.rule == "within_distance":
                s[q] = dq <= ind.threshold_m
            elif ind.rule == "within_network_distance":
                nd, ni = graph.distance_to_nearest(
                    shapely.get_coordinates(pts[q]), index.anchor_xy,
                    max_distance=None if c == PASS else ind.threshold_m)
                s[q] = nd <= ind.threshold_m
                if c == PASS:
                    net[q] = nd
                else:  # the candidate is the feature reached along the roads
                    d[q] = nd
                    i[q] = np.where(ni >= 0, sub[np.maximum(ni, 0)], -1)
            elif ind.rule == "inside_village":
                pq = is_poly[q]
                if pq.any():
                    s[q[pq]] = index.any_intersecting(polys[q[pq]])
                if ind.fallback_threshold_m is not None:
                    s[q[~pq]] = dq[~pq] <= ind.fallback_threshold_m
            else:  # coverage: inside an area, or within a feature's own radius
                cov, ci = index.covered(pts[q], radius[sub])
                ci = np.where(cov, sub[np.maximum(ci, 0)], -1)
                s[q] = cov
                if c != PASS:  # for PASS the evidence stays the nearest qualifying feature
                    i[q] = ci
                    d[q] = np.where(cov, shapely.distance(
                        pts[q], layer_index.projected[np.maximum(ci, 0)]), np.nan)
        sat[c] = s
        near_d[c] = d
        near_i[c] = (np.where(i >= 0, win[np.maximum(i, 0)], -1) if len(win)
                     else np.full(m, -1, dtype=np.int64))
        todo &= ~s
    met, unk, fail = sat[PASS], ~sat[PASS] & sat[UNKNOWN], ~sat[PASS] & ~sat[UNKNOWN] & sat[FAIL]
    status = np.where(met, 0, np.where(unk, 2, 1)).astype(np.int8)
    if ind.rule == "inside_village":
        met_reason = np.where(is_poly, _R["inside_village"], _R["within_threshold"])
    else:
        met_reason = _R[{"within_distance": "within_threshold", "coverage": "covered",
                         "within_network_distance": "within_network_threshold"}[ind.rule]]
    reason = np.select(
        [met, unk, fail, np.isfinite(near_d[PASS])],
        [met_reason, _R["unverified_nearby"], _R["non_qualifying_nearby"],
         _R["none_within_threshold"]], _R["no_qualifying_feature"]).astype(np.int8)
    if ind.rule == "inside_village" and ind.fallback_threshold_m is None:
        undecidable = ~is_poly & ~met
        status[undecidable] = 2
        reason[undecidable] = _R["rule_needs_polygon"]
    res.status[gidx] = status
    res.reason[gidx] = reason
    res.dist[gidx] = near_d[PASS]
    res.evid[gidx] = near_i[PASS]
    cand = np.where(unk, near_i[UNKNOWN], np.where(fail, near_i[FAIL], -1))
    cand_d = np.where(unk, near_d[UNKNOWN], np.where(fail, near_d[FAIL], np.nan))
    res.cand[gidx] = cand
    res.cand_dist[gidx] = cand_d
    res.net[gidx] = net


def _to_table(villages: pd.DataFrame, layers: dict[str, gpd.GeoDataFrame], inds: list[Indicator],
              masks: dict[str, np.ndarray], results: dict[str, _Result]) -> pd.DataFrame:
    """The long table: text columns are taken from small string arrays by position (no per-row
    string conversion)."""
    # every evidence id once: the layers' ids one after another, then a null for "none"
    offset: dict[str, int] = {}
    pools = []
    for ind in inds:
        if ind.layer in layers and ind.layer not in offset:
            offset[ind.layer] = sum(len(p) for p in pools)
            pools.append(layers[ind.layer]["id"].astype("string").array)
    null_id = sum(len(p) for p in pools)
    id_pool = strings(pd.concat([pd.Series(p) for p in [*pools, [pd.NA]]], ignore_index=True))
    failed = []
    rows, ind_no, cols = [], [], {k: [] for k in ("status", "reason", "dist", "evid", "cand",
                                                  "cand_dist", "net")}
    for n, ind in enumerate(inds):
        r = np.flatnonzero(masks[ind.key])
        res = results[ind.key]
        off = offset.get(ind.layer, 0)
        rows.append(r)
        failed.append(_failed(layers.get(ind.layer), ind, res.cand[r]))
        ind_no.append(np.full(len(r), n, dtype=np.int64))
        for k in cols:
            val = getattr(res, k)[r]
            if k in ("evid", "cand"):
                val = np.where(val >= 0, val + off, null_id)
            cols[k].append(val)
    if not rows:
        return pd.DataFrame(columns=[*GAP_COLUMNS, "_v"])
    v = np.concatenate(rows)
    c = {k: np.concatenate(x) for k, x in cols.items()}
    return pd.DataFrame({
        "village_code": strings(villages["code"]).take(v),
        "level": strings(villages["level"]).take(v),
        "indicator": strings([i.key for i in inds]).take(np.concatenate(ind_no)),
        "status": strings(_STATUS).take(c["status"]),
        "distance_m": c["dist"],
        "evidence_id": id_pool.take(c["evid"]),
        "candidate_id": id_pool.take(c["cand"]),
        "candidate_distance_m": c["cand_dist"],
        "network_m": c["net"],
        "reason": strings(_REASON).take(c["reason"]),
        "failed": pd.concat(failed, ignore_index=True).array,
        "_v": v})


def _failed(layer: gpd.GeoDataFrame | None, ind: Indicator, cand: np.ndarray) -> pd.Series:
    """The failed evidence condition of each candidate feature (positions ``cand`` in
    ``layer``, -1: none), described once per distinct feature."""
    none = pd.Series(pd.NA, index=range(len(cand)), dtype="string")
    has = cand >= 0
    if layer is None or not has.any():
        return none
    u, inv = np.unique(cand[has], return_inverse=True)
    text = explain(layer.iloc[u], ind.evidence).array
    none[has] = text.take(inv)
    return none
