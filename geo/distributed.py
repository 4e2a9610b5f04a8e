"""The distributed engine: :func:`geo.gaps.assess` per partition of villages on Dask.

``assess_dask`` returns exactly what ``assess`` returns for the whole project (same rows, same
order, same values to the last bit, same dtypes); only where the work runs changes.

Method
------
1. **Bands once.** The metric CRSs are chosen once, with :func:`geo.metric.bands_of` on all
   villages (each village's own UTM zone); every partition is assessed with those bands
   restricted to its members, so each village is measured in the same CRS, with the same
   feature windows, as on one machine and in any other run that holds it.
2. **Partitions.** Villages are grouped by ``county`` (villages without one by 0.25° blocks of
   their reference point). The groups are ordered along a Hilbert curve through their mean
   reference point and packed, in that order, into about ``partitions`` partitions of similar
   size (default 4 per worker); a county larger than 1.5 partitions is cut along the curve.
3. **Halos.** A partition's box is the bounding box of its villages' geometries and reference
   points. For every layer it reads it gets the features whose bounds intersect the box widened
   by the layer's halo width, in their original order (``geo.nearest`` breaks ties by the
   lowest feature index, so a partition must see features in the order of the full layer;
   evidence and candidate ids come from the ``id`` column, so nothing else is renumbered). The
   first halo width of a layer is 1.25 x the largest distance at which any indicator reading it
   can decide a status (``reach_m``; for coverage also the largest ``radius_m`` of the layer; at
   least 2 km). A halo may hold more than that, never less: for each indicator's qualifying
   lines it keeps at least 512 vertex pairs (the nearest lines beyond the box), so that the line
   index takes its GEOS fallback where the whole layer's does, not merely because the halo is
   sparse (see ``_Plan._pad_lines``).
4. **Certification.** A feature outside a halo lies entirely outside the widened box, so it is
   farther from a village than the box's edge. Each worker measures, per village and layer, the
   margin: the distance in the village's metric CRS from its reference point to the edge of the
   widened box (clipped to the band's feature window; the projected edge is measured as chords
   every 0.2°, less twice the largest chord-to-curve gap and 1 m). A village's result is
   certain when, for every indicator that applies to it,

   - the indicator's reach (and largest coverage radius) is below the margin (every bounded
     query - thresholds, unknown / non-qualifying candidates, coverage - saw all it could see;
     polygons lie inside the box, so ``inside_village`` intersections are complete);
   - ``distance_m``, the UNBOUNDED distance to the nearest qualifying feature, is found and
     below the margin (so no feature outside the halo can be nearer or tie with it), or the
     layer has no qualifying feature at all;
   - for ``within_network_distance``: ``network_m`` is found and below the margin of both the
     facility and the road layer (a road path of length L stays within L of the village, so
     every edge, node snap and tied target of it lies in the halo and the Dijkstra values are
     the same), or the village lies farther than ``SNAP_M`` from every road (off the network
     on one machine too).

   A layer with nothing outside its halo (every feature in reach of the partition's bands) has
   an infinite margin.
5. **Rounds.** Certain villages are final. The uncertain ones are assessed again with the halo
   width of each layer that left them uncertain multiplied by 4 (beyond 4000 km: everything),
   now with one box per village (they are few and scattered, and a village's margin is then
   measured to its own widened box; the halo is the union), regrouped into partition-sized
   tasks, until none is left. This settles, exactly, villages whose nearest qualifying feature
   lies in a neighbouring partition or far away; the number of rounds grows with the logarithm
   of the largest such distance. (``geo.gaps`` cannot take a band whose feature window is
   empty, so a halo that would leave one empty keeps that window's first feature: it lies
   beyond the box, so it cannot make a result certain.)
6. **Assembly.** Each task returns its certain rows with ``_v`` mapped back to global village
   positions; the rows are concatenated and sorted by (profile indicator order, village
   position), the order of ``assess``.

Limits of "identical": the argument above is exact for the set of candidates; two corner cases
of ``geo.nearest`` could still differ in the last bit or a tie, and have not been seen on the
synthetic province or the Andorra data: a line query left "unsure" after 512 candidates in a
very dense area (then measured by GEOS instead of numpy; whether that happens also depends on
the index's longest segment, which a halo may lack), and three or more point features exactly
equidistant from a village (the k-d tree compares only the two nearest).

Layers travel to the workers as halos (one scatter per task), trimmed to the columns the
engine reads (``id``, ``radius_m``, the evidence fields, geometry); the workers need not see
the input files. Workers must run the same versions of buque, numpy, scipy, shapely/GEOS and
pyproj/PROJ as the client for bit-identical results: they are checked before any work is sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from buque.geo.evidence import PASS
from buque.geo.gaps import assess
from buque.geo.metric import Band, bands_of, in_lon_range, transform_xy
from buque.geo.nearest import K_CANDIDATES, FeatureIndex
from buque.geo.network import SNAP_M
from buque.geo.rules import rule_of
from buque.layers.profile import Condition, Profile

HALO_SLACK = 1.25  # first halo width: this times the largest reach of a layer
MIN_HALO_M = 2000.0  # ... and at least this
HALO_GROWTH = 4.0  # each further round multiplies the width of the failing layers by this
MAX_HALO_M = 4_000_000.0  # beyond this a layer is sent whole (to the partition's bands' windows)
MARGIN_TOL_M = 1.0  # taken off every measured margin (densified box edge, projection)
BOX_STEP_DEG = 0.2  # box edges are densified to this step before projecting (chord gaps: metres)
BLOCK_DEG = 0.25  # spatial blocks for villages without a county
M_PER_DEG_LAT = 110_000.0  # below the true minimum (110 574 m): widened boxes err on the wide side
M_PER_DEG_LON_EQ = 111_000.0  # likewise (111 320 m at the equator)
MAX_ROUNDS = 32  # a safety stop; termination is guaranteed well before
LINE_CANDIDATES = K_CANDIDATES * 64  # the most segments geo.nearest tries before GEOS

Step = Callable[[str], None]


class EngineError(RuntimeError):
    """The distributed engine cannot run (dask missing, scheduler unreachable, version skew)."""


@dataclass
class _Facts:
    """Project-wide facts per indicator that certification needs (small: sent with every task)."""

    pass_any: dict[str, bool]  # the layer has at least one qualifying feature
    reach: dict[str, float]  # the rule's reach on the layers (Rule.halo_m: for coverage
                              # also the largest feature radius)


@dataclass
class _Task:
    """One partition's work: its villages, the halos of the layers, the widened boxes."""

    positions: np.ndarray  # global positions of the villages (ascending)
    villages: gpd.GeoDataFrame
    layers: dict[str, gpd.GeoDataFrame]
    bands: list[Band]  # the global bands restricted to these villages (local positions)
    boxes: dict[str, np.ndarray | None]  # per layer: widened boxes (K, 4); None: nothing of
    # the layer is outside the halo
    owner: np.ndarray  # per village: its box (row of boxes), -1 for none (no reference point)


@dataclass
class _Result:
    rows: pd.DataFrame  # certain rows, ``_v`` global
    uncertain: np.ndarray  # global positions
    failed: set[str] = field(default_factory=set)  # layers whose halo was too narrow


def assess_dask(villages: gpd.GeoDataFrame, layers: dict[str, gpd.GeoDataFrame], profile: Profile,
                scheduler: str | None = None, partitions: int | None = None, *,
                client: Any = None, step: Step | None = None, info: dict | None = None,
                registers: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """What :func:`geo.gaps.assess` returns, computed per partition of villages on Dask.

    ``scheduler``: a Dask scheduler address (``tcp://host:8786``); default a LocalCluster of two
    single-threaded worker processes. ``client``: an open ``dask.distributed.Client`` to use
    instead. ``partitions``: about how many partitions (default 4 per worker). ``info``, when
    given, is filled with the partition sizes and the work of each round. Indicators of
    non-spatial rules (registers) are assessed here, on the client, and merged in order.
    """
    local = {k: i for k, i in profile.indicators.items() if not rule_of(i).spatial}
    if local:
        spatial = {k: i for k, i in profile.indicators.items() if k not in local}
        parts = [assess(villages, {}, replace(profile, indicators=local), registers=registers)]
        if spatial:
            parts.append(assess_dask(villages, layers, replace(profile, indicators=spatial),
                                     scheduler, partitions, client=client, step=step, info=info))
        gaps = pd.concat(parts, ignore_index=True)
        gaps["count"] = gaps["count"].astype("Int64")
        key = pd.Index(list(profile.indicators)).get_indexer(gaps["indicator"].to_numpy(dtype=object))
        return gaps.iloc[np.lexsort((gaps["_v"].to_numpy(), key))].reset_index(drop=True)
    if len(villages) == 0 or not profile.indicators:
        return assess(villages, layers, profile)
    plan = _Plan(villages, layers, profile)
    with _connect(scheduler, client) as c:
        from dask.distributed import as_completed

        n_workers = max(1, len(c.scheduler_info().get("workers", {})))
        parts = partition_villages(villages, partitions or 4 * n_workers)
        if info is not None:
            info.update(workers=n_workers, partitions=[len(p) for p in parts], rounds=[])
            info["partition_of"] = np.full(len(villages), -1, dtype=np.int64)
            for j, p in enumerate(parts):
                info["partition_of"][p] = j
        if step:
            step(f"dask: {len(villages):,} villages in {len(parts)} partitions on {n_workers} "
                 "worker(s)")
        target = max(len(p) for p in parts)
        pending = [(p, dict(plan.base)) for p in parts]
        out: list[pd.DataFrame] = []
        for rnd in range(MAX_ROUNDS):
            if not pending:
                break
            if step and rnd:
                step(f"dask: round {rnd + 1}, {sum(len(p) for p, _ in pending):,} villages with "
                     "wider halos")
            futures = {}
            for pos, margins in pending:
                # round 1: one box per partition; later: one per village (few, scattered)
                task = c.scatter(plan.task(pos, margins, own_boxes=rnd > 0), hash=False)
                futures[c.submit(_assess_task, task, profile, plan.facts, pure=False)] = margins
            nxt: dict[tuple, list[np.ndarray]] = {}
            for fut in as_completed(list(futures)):
                res: _Result = fut.result()
                margins = futures.pop(fut)
                fut.release()
                if len(res.rows):
                    out.append(res.rows)
                if len(res.uncertain):
                    grown = {k: (m * HALO_GROWTH if k in res.failed else m) for k, m in margins.items()}
                    grown = {k: (math.inf if m > MAX_HALO_M else m) for k, m in grown.items()}
                    nxt.setdefault(tuple(sorted(grown.items())), []).append(res.uncertain)
            if info is not None:
                info["rounds"].append({"tasks": len(pending),
                                       "villages": int(sum(len(p) for p, _ in pending)),
                                       "uncertain": int(sum(len(q) for g in nxt.values() for q in g))})
            pending = []
            for key, groups in nxt.items():  # the same halo widths: regroup, partition-sized
                pos = np.sort(np.concatenate(groups))
                for q in partition_villages(villages.iloc[pos], math.ceil(len(pos) / target)):
                    pending.append((pos[q], dict(key)))
        if pending:  # pragma: no cover - the halos reach every feature long before
            raise EngineError(f"{sum(len(p) for p, _ in pending)} villages not settled after "
                              f"{MAX_ROUNDS} rounds")
    if not out:
        return assess(villages.iloc[:0], layers, profile)
    gaps = pd.concat(out, ignore_index=True)
    key = pd.Index(list(profile.indicators)).get_indexer(gaps["indicator"].to_numpy(dtype=object))
    order = np.lexsort((gaps["_v"].to_numpy(), key))
    return gaps.iloc[order].reset_index(drop=True)


# --------------------------------------------------------------------------- partitions

def partition_villages(villages: pd.DataFrame, n_parts: int) -> list[np.ndarray]:
    """About ``n_parts`` groups of village positions (each ascending): whole counties, packed
    along a Hilbert curve; a county larger than 1.5 groups is cut along the curve."""
    n = len(villages)
    if n == 0:
        return []
    lon = villages["ref_lon"].to_numpy(dtype=float, na_value=np.nan)
    lat = villages["ref_lat"].to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(lon) & np.isfinite(lat)
    county = (villages["county"].astype("string") if "county" in villages
              else pd.Series(pd.NA, index=villages.index, dtype="string"))
    has = county.notna().to_numpy()
    codes = np.empty(n, dtype=np.int64)
    codes[has] = pd.factorize(county.to_numpy(dtype=object, na_value=None)[has])[0]
    # no county: a block of the reference point (one more group for no reference point)
    bx = np.floor(np.where(ok, lon, 0.0) / BLOCK_DEG).astype(np.int64)
    by = np.floor(np.where(ok, lat, 0.0) / BLOCK_DEG).astype(np.int64)
    block = np.where(ok, (bx + 4096) * 8192 + (by + 4096), -1)
    codes[~has] = pd.factorize(block[~has])[0] + (codes[has].max() + 1 if has.any() else 0)
    n_units = int(codes.max()) + 1
    h = _hilbert(lon, lat, ok)
    cnt = np.bincount(codes[ok], minlength=n_units)
    with np.errstate(invalid="ignore", divide="ignore"):
        ulon = np.bincount(codes[ok], weights=lon[ok], minlength=n_units) / cnt
        ulat = np.bincount(codes[ok], weights=lat[ok], minlength=n_units) / cnt
    ukey = _hilbert(ulon, ulat, cnt > 0, ref=(lon[ok], lat[ok]))
    unit_rank = np.empty(n_units, dtype=np.int64)
    unit_rank[np.lexsort((np.arange(n_units), ukey))] = np.arange(n_units)
    order = np.lexsort((np.arange(n), h, unit_rank[codes]))
    sizes = np.bincount(codes, minlength=n_units)[np.argsort(unit_rank)]
    starts = np.r_[0, np.cumsum(sizes)]
    target = max(1, math.ceil(n / max(1, int(n_parts))))
    parts: list[np.ndarray] = []
    cur_lo = cur_hi = 0  # the current group: order[cur_lo:cur_hi]
    for u in range(n_units):
        lo, hi = int(starts[u]), int(starts[u + 1])
        size = hi - lo
        if size > 1.5 * target:
            if cur_hi > cur_lo:
                parts.append(order[cur_lo:cur_hi])
            parts.extend(np.array_split(order[lo:hi], math.ceil(size / target)))
            cur_lo = cur_hi = hi
            continue
        if cur_hi > cur_lo and (cur_hi - cur_lo) + size > 1.25 * target:
            parts.append(order[cur_lo:cur_hi])
            cur_lo = lo
        cur_hi = hi
    if cur_hi > cur_lo:
        parts.append(order[cur_lo:cur_hi])
    return [np.sort(p) for p in parts if len(p)]


def _hilbert(lon: np.ndarray, lat: np.ndarray, ok: np.ndarray, bits: int = 16,
             ref: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Position along a Hilbert curve over the extent of ``ref`` (default: the points); the
    points not ``ok`` come last."""
    rlon, rlat = ref if ref is not None else (lon[ok], lat[ok])
    out = np.full(len(lon), np.iinfo(np.int64).max, dtype=np.int64)
    if not ok.any() or len(rlon) == 0:
        return out
    side = (1 << bits) - 1

    def grid(v: np.ndarray, r: np.ndarray) -> np.ndarray:
        lo, hi = float(r.min()), float(r.max())
        return np.clip(np.round((v - lo) / ((hi - lo) or 1.0) * side), 0, side).astype(np.int64)

    x, y = grid(lon[ok], rlon), grid(lat[ok], rlat)
    d = np.zeros(len(x), dtype=np.int64)
    s = 1 << (bits - 1)
    while s > 0:
        rx = (x & s) > 0
        ry = (y & s) > 0
        d += s * s * ((3 * rx.astype(np.int64)) ^ ry.astype(np.int64))
        flip = ~ry & rx
        x = np.where(flip, side - x, x)
        y = np.where(flip, side - y, y)
        x, y = np.where(~ry, y, x), np.where(~ry, x, y)
        s >>= 1
    out[ok] = d
    return out


# --------------------------------------------------------------------------- the driver's plan

class _Plan:
    """Everything computed once on the client: bands, layer bounds and windows, first halos."""

    def __init__(self, villages: gpd.GeoDataFrame, layers: dict[str, gpd.GeoDataFrame],
                 profile: Profile) -> None:
        self.villages = villages
        inds = list(profile.indicators.values())
        used = {k for i in inds for k in rule_of(i).reads(i)}
        self.layers = {k: _trim(g, profile, k) for k, g in layers.items() if k in used}
        lon = villages["ref_lon"].to_numpy(dtype=float)
        lat = villages["ref_lat"].to_numpy(dtype=float)
        self.lonlat = np.column_stack([lon, lat])
        self.bands = list(bands_of(lon, lat))
        self.band_of = np.full(len(villages), -1, dtype=np.int64)
        for j, b in enumerate(self.bands):
            self.band_of[b.members] = j
        self.vbounds = shapely.bounds(villages.geometry.to_numpy())
        self.bounds = {k: shapely.bounds(g.geometry.to_numpy()) for k, g in self.layers.items()}
        self.windows = {k: [in_lon_range(g.geometry.to_numpy(), b.lon_range) for b in self.bands]
                        for k, g in self.layers.items()}
        pass_any, reach_of = {}, {}
        need = dict.fromkeys(self.layers, 0.0)
        # evidence classes once per indicator, from its rule unit (as geo.gaps does)
        classes = {i.key: rule_of(i).classes(self.layers[i.layer], i) for i in inds
                   if i.layer in self.layers}
        for i in inds:
            pass_any[i.key] = bool(i.key in classes and (classes[i.key] == PASS).any())
            reach = rule_of(i).halo_m(i, self.layers)  # the rule's reach on these layers
            reach_of[i.key] = reach
            for k in rule_of(i).reads(i):
                if k in need:
                    need[k] = max(need[k], reach)
        self.facts = _Facts(pass_any=pass_any, reach=reach_of)
        self.base = {k: max(MIN_HALO_M, HALO_SLACK * r) for k, r in need.items()}
        self._trees: dict[str, shapely.STRtree] = {}
        # line features: vertex pairs (a lower bound of their index segments), and per indicator
        # the qualifying ones (whose unbounded nearest query must take the same path, see task)
        self.pairs: dict[str, np.ndarray] = {}
        self.pass_lines: dict[str, list[np.ndarray]] = {}
        for k, g in self.layers.items():
            geoms = g.geometry.to_numpy()
            line = np.isin(shapely.get_type_id(geoms), (1, 2, 5))
            if not line.any():
                continue
            self.pairs[k] = np.where(line, shapely.get_num_coordinates(geoms)
                                     - shapely.get_num_geometries(geoms), 0)
            self.pass_lines[k] = [line & (classes[i.key] == PASS) for i in inds
                                  if i.layer == k]

    def task(self, pos: np.ndarray, margins: dict[str, float], own_boxes: bool = False) -> _Task:
        """The task of the villages at ``pos``: halos of every layer within its width
        (``margins``) of one box around all the villages, or of each village's own box."""
        pos = np.sort(np.asarray(pos, dtype=np.int64))
        bidx = self.band_of[pos]
        used = [j for j in range(len(self.bands)) if (bidx == j).any()]
        bands = [Band(crs=self.bands[j].crs, west=self.bands[j].west, east=self.bands[j].east,
                      members=np.flatnonzero(bidx == j)) for j in used]
        vb, ll = self.vbounds[pos], self.lonlat[pos]
        with np.errstate(invalid="ignore"):
            own = np.column_stack([np.fmin(vb[:, 0], ll[:, 0]), np.fmin(vb[:, 1], ll[:, 1]),
                                   np.fmax(vb[:, 2], ll[:, 0]), np.fmax(vb[:, 3], ll[:, 1])])
        finite = np.isfinite(own).all(axis=1)
        if own_boxes:
            vboxes, owner = own[finite], np.where(finite, np.cumsum(finite) - 1, -1)
        elif finite.any():
            vboxes = np.r_[own[finite, :2].min(axis=0), own[finite, 2:].max(axis=0)][None, :]
            owner = np.where(finite, 0, -1)
        else:
            vboxes, owner = np.zeros((0, 4)), np.full(len(pos), -1)
        halos: dict[str, gpd.GeoDataFrame] = {}
        boxes: dict[str, np.ndarray | None] = {}
        for k, g in self.layers.items():
            inwin = np.zeros(len(g), dtype=bool)
            for j in used:
                inwin |= self.windows[k][j]
            wide = None
            if len(vboxes) and used and math.isfinite(margins[k]):
                wide = _widen(vboxes, margins[k])
                hit = self._hits(k, wide) & inwin
                for j in used:
                    for mask in self.pass_lines.get(k, []):
                        self._pad_lines(k, hit, self.windows[k][j] & mask, wide)
                if (inwin & ~hit).any():
                    for j in used:  # geo.gaps cannot take an empty window: keep one feature
                        wj = self.windows[k][j]  # (beyond the box: its villages stay uncertain)
                        if wj.any() and not (hit & wj).any():
                            hit[np.argmax(wj)] = True
                    inwin = hit
                else:
                    wide = None  # the halo holds everything the partition's bands can see
            halos[k] = g.iloc[np.flatnonzero(inwin)].reset_index(drop=True)
            boxes[k] = wide
        return _Task(positions=pos, villages=self.villages.iloc[pos].reset_index(drop=True),
                     layers=halos, bands=bands, boxes=boxes, owner=owner)

    def _pad_lines(self, kind: str, hit: np.ndarray, cand: np.ndarray, boxes: np.ndarray) -> None:
        """Add to ``hit`` the candidate lines nearest the boxes until the halo holds at least
        LINE_CANDIDATES vertex pairs of them, or all of them (in place).

        ``geo.nearest`` settles a line query with GEOS instead of numpy (equal to the last bit
        only up to rounding) when its candidate set is not provably complete after
        LINE_CANDIDATES segments, which an index with fewer segments than that - a sparse halo -
        reaches far more often than the whole layer. With this many segments in the halo, the
        halo takes that path only where the whole layer does too (the segments then lie within
        the margin, so in both).
        """
        have = int(self.pairs[kind][hit & cand].sum())
        rest = np.flatnonzero(cand & ~hit)
        if have >= LINE_CANDIDATES or not len(rest):
            return
        b = self.bounds[kind][rest]
        cx, cy = (boxes[:, 0].min() + boxes[:, 2].max()) / 2, (boxes[:, 1].min() + boxes[:, 3].max()) / 2
        near = rest[np.argsort(((b[:, 0] + b[:, 2]) / 2 - cx) ** 2 + ((b[:, 1] + b[:, 3]) / 2 - cy) ** 2,
                               kind="stable")]
        upto = np.searchsorted(np.cumsum(self.pairs[kind][near]), LINE_CANDIDATES - have)
        hit[near[: upto + 1]] = True

    def _hits(self, kind: str, boxes: np.ndarray) -> np.ndarray:
        """Which features of a layer have bounds intersecting any of ``boxes``."""
        b = self.bounds[kind]
        if len(boxes) == 1:
            w, s, e, n = boxes[0]
            return (b[:, 2] >= w) & (b[:, 0] <= e) & (b[:, 3] >= s) & (b[:, 1] <= n)
        if kind not in self._trees:
            self._trees[kind] = shapely.STRtree(self.layers[kind].geometry.to_numpy())
        hit = np.zeros(len(b), dtype=bool)
        hit[self._trees[kind].query(shapely.box(*boxes.T))[1]] = True  # envelopes intersect
        return hit


def _trim(gdf: gpd.GeoDataFrame, profile: Profile, kind: str) -> gpd.GeoDataFrame:
    """The columns of a layer the engine reads: id, radius_m, evidence fields, the fields the
    rule units read themselves (:meth:`geo.rules.base.Rule.fields`), geometry."""
    keep = {"id", "radius_m"}

    def fields(c: Condition) -> None:
        keep.add(c.field)
        if isinstance(c.if_null, Condition):
            fields(c.if_null)

    for i in profile.indicators.values():
        if i.layer == kind:
            for c in i.evidence:
                fields(c)
            keep.update(rule_of(i).fields(i))  # what the rule unit reads itself
    cols = [c for c in gdf.columns if c in keep or c == gdf.geometry.name]
    return gdf[cols]


def _widen(boxes: np.ndarray, m: float) -> np.ndarray:
    """Boxes (K, 4: lon/lat min, max) widened by at least ``m`` metres on every side (in
    degrees, erring on the wide side)."""
    dlat = m / M_PER_DEG_LAT
    s, n = np.maximum(-90.0, boxes[:, 1] - dlat), np.minimum(90.0, boxes[:, 3] + dlat)
    c = np.cos(np.radians(np.maximum(np.abs(s), np.abs(n))))
    dlon = np.where(c > 1e-6, m / (M_PER_DEG_LON_EQ * np.maximum(c, 1e-6)), 360.0)
    return np.column_stack([np.maximum(-540.0, boxes[:, 0] - dlon), s,
                            np.minimum(540.0, boxes[:, 2] + dlon), n])


# --------------------------------------------------------------------------- on the workers

def _assess_task(task: _Task, profile: Profile, facts: _Facts) -> _Result:
    """Assess one partition with the global bands; keep the villages whose result is certain."""
    g = assess(task.villages, task.layers, profile, bands=task.bands)
    ok, failed = _certify(g, task, profile, facts)
    local = g["_v"].to_numpy()
    g = g.loc[ok[local]].reset_index(drop=True)
    g["_v"] = task.positions[g["_v"].to_numpy()]
    return _Result(rows=g, uncertain=task.positions[~ok], failed=failed)


def _certify(g: pd.DataFrame, task: _Task, profile: Profile, facts: _Facts
             ) -> tuple[np.ndarray, set[str]]:
    """Per village of the task: is its result the one-machine result? And which layers' halos
    were too narrow for the others."""
    n = len(task.villages)
    ok = np.ones(n, dtype=bool)
    failed: set[str] = set()
    lonlat = task.villages[["ref_lon", "ref_lat"]].to_numpy(dtype=float)
    pts = [shapely.points(transform_xy(lonlat[b.members], b.crs)) for b in task.bands]
    margin = {k: _margins(task, k, pts) for k in task.layers}
    v = g["_v"].to_numpy()
    ind = g["indicator"].to_numpy(dtype=object)
    dist = g["distance_m"].to_numpy(dtype=float, na_value=np.nan)
    net = g["network_m"].to_numpy(dtype=float, na_value=np.nan)
    for key, i in profile.indicators.items():
        rule = rule_of(i)
        if not rule.spatial or any(k not in task.layers for k in rule.reads(i)):
            continue  # not spatial, or not provided: the same default everywhere
        net_layer = rule.network_layer(i)
        network = net_layer is not None
        sel = ind == key
        rv = v[sel]
        m = margin[i.layer][rv]
        reach = facts.reach[key]
        d = dist[sel]
        good = np.isinf(m) | ((reach < m) & ((np.isfinite(d) & (d < m)) | (not facts.pass_any[key])))
        if not good.all():
            failed.add(i.layer)
        if network:
            mr = margin[net_layer][rv]
            mn = np.minimum(m, mr)
            nd = net[sel]
            good_net = np.isinf(mn) | ((reach < mn) & ((np.isfinite(nd) & (nd < mn))
                                                         | (not facts.pass_any[key])))
            check = ~good_net & np.isnan(nd) & (mr > SNAP_M + MARGIN_TOL_M)
            if check.any():  # off the road network on one machine too?
                good_net[check] = _off_network(task, net_layer, rv[check], pts)
            if not good_net.all():
                failed.update((i.layer, net_layer))
            good &= good_net
        ok[rv[~good]] = False
    return ok, failed


def _margins(task: _Task, kind: str, pts: list[np.ndarray]) -> np.ndarray:
    """Per village: metres from its reference point (``pts``: projected, per band) to the edge
    of the layer's widened box (clipped to the band's feature window), in its band's CRS; inf
    where nothing of the layer is outside the halo."""
    n = len(task.villages)
    out = np.full(n, np.inf)
    boxes = task.boxes[kind]
    if boxes is None:
        return out
    for b, p in zip(task.bands, pts, strict=True):
        used, inv = np.unique(task.owner[b.members], return_inverse=True)
        bx = boxes[used]
        w, e = np.maximum(bx[:, 0], b.lon_range[0]), np.minimum(bx[:, 2], b.lon_range[1])
        rings = shapely.segmentize(shapely.get_exterior_ring(shapely.box(w, bx[:, 1], e, bx[:, 3])),
                                   BOX_STEP_DEG)
        ll, ring_of = shapely.get_coordinates(rings, return_index=True)
        xy = transform_xy(ll, b.crs)
        # the projected edges are curves: measure to their chords, less twice the largest gap
        # between a chord and its curve (at the projected mid-point of each chord)
        same = ring_of[1:] == ring_of[:-1]
        gap = _segment_distance(transform_xy((ll[:-1][same] + ll[1:][same]) / 2, b.crs),
                                xy[:-1][same], xy[1:][same])
        sag = np.zeros(len(used))
        np.maximum.at(sag, ring_of[:-1][same], gap)
        d = shapely.distance(p, shapely.linestrings(xy, indices=ring_of)[inv])
        out[b.members] = d * (1 - 1e-9) - 2 * sag[inv] - MARGIN_TOL_M
    return out


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise distance from points ``p`` to segments ``a``-``b`` (all (N, 2))."""
    ab, ap = b - a, p - a
    den = np.einsum("ij,ij->i", ab, ab)
    t = np.clip(np.einsum("ij,ij->i", ap, ab) / np.where(den > 0, den, 1), 0, 1)
    return np.hypot(*(ap - t[:, None] * ab).T)


def _off_network(task: _Task, roads: str, rows: np.ndarray, pts: list[np.ndarray]
                 ) -> np.ndarray:
    """Whether the villages at ``rows`` lie farther than SNAP_M (+ tolerance) from every road of
    the halo; with a road margin above that, no road node of the whole layer is within SNAP_M."""
    out = np.zeros(len(rows), dtype=bool)
    geoms = task.layers[roads].geometry.to_numpy()
    for b, p in zip(task.bands, pts, strict=True):
        inb = np.isin(rows, b.members)
        if not inb.any():
            continue
        idx = FeatureIndex(geoms[in_lon_range(geoms, b.lon_range)], b.crs)
        d, _ = idx.nearest(p[np.searchsorted(b.members, rows[inb])])
        out[inb] = np.isnan(d) | (d > SNAP_M + MARGIN_TOL_M)
    return out


# --------------------------------------------------------------------------- the cluster

def _lib_versions() -> dict[str, str]:
    """Versions that decide the bits of a result (compared between the client and workers)."""
    import numpy
    import pandas
    import pyproj
    import scipy

    from buque.geo.version import tool_version

    return {"buque": tool_version(), "numpy": numpy.__version__, "scipy": scipy.__version__,
            "pandas": pandas.__version__, "shapely": shapely.__version__,
            "geos": shapely.geos_version_string, "pyproj": pyproj.__version__,
            "proj": pyproj.proj_version_str}


@contextmanager
def _connect(scheduler: str | None, client: Any) -> Iterator[Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise EngineError("the dask engine needs dask.distributed: "
                          "pip install 'dask[distributed]'") from e
    if client is not None:
        _check_workers(client)
        yield client
        return
    if scheduler:
        try:
            c = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as e:
            raise EngineError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from e
        with c:
            _check_workers(c)
            yield c
        return
    # no dashboard; the scheduler's HTTP server (health, metrics) on a free port, not 8787,
    # which another cluster on the machine may hold
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": ":0"}) as cluster, Client(cluster) as c:
        _check_workers(c)
        yield c


def _check_workers(c: Any) -> None:
    try:
        c.wait_for_workers(1, timeout=60)
    except TimeoutError as e:
        raise EngineError("the Dask scheduler has no workers (start some with `dask worker "
                          "ADDRESS`)") from e
    mine = _lib_versions()
    try:
        versions = c.run(_lib_versions)
    except ImportError as e:
        raise EngineError(f"the Dask workers cannot import buque ({e}): install it on every "
                          "worker machine") from e
    for addr, theirs in versions.items():
        diff = {k: (v, theirs.get(k)) for k, v in mine.items() if theirs.get(k) != v}
        if diff:
            raise EngineError(f"worker {addr} runs other versions than this client "
                              f"(client, worker): {diff}; results would not be identical")
