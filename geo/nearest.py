"""Bulk nearest-feature queries in a metric CRS.

- Point features: a k-d tree (``scipy.spatial.cKDTree``, queried on every core).
- Line features: split into short segments whose midpoints go into a k-d tree; the k nearest
  midpoints give candidates whose exact point-to-segment distances are computed in numpy. A
  candidate set is provably complete when the k-th midpoint is farther than the best distance
  plus the longest half-segment; the rare points where it is not go through shapely's STRtree.
- Polygons (and anything else): shapely 2's STRtree.

Every method answers for all query points at once; none loops over villages or features in
Python. Ties are broken by the lowest feature index: a subset of a layer that keeps the
layer's order (a zone's window, a Dask halo) picks the same feature as the whole layer.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import shapely
from scipy.spatial import cKDTree
from shapely import STRtree

from buque.geo.metric import project, transform_xy

WORKERS = -1  # k-d tree queries use every core
# trees are built unbalanced and uncompacted (sliding-midpoint splits): much faster to build on
# millions of points, queries stay exact (measured -26% assess time at national size)
SEGMENT_M = 400.0  # longest segment in the line index
K_CANDIDATES = 8
K_TIES = 4  # points compared for exact distance ties


class FeatureIndex:
    """Features (EPSG:4326) indexed in the metric ``crs``; indexes are built lazily, once.

    Query points are projected: point geometries or an (n, 2) coordinate array (cheaper)."""

    def __init__(self, geoms: np.ndarray, crs: str) -> None:
        self.geoms = np.asarray(geoms, dtype=object)
        self.crs = crs
        types = shapely.get_type_id(self.geoms)
        self._points = np.flatnonzero(types == 0)
        self._lines = np.flatnonzero(np.isin(types, (1, 2, 5)))
        self._others = np.flatnonzero(~np.isin(types, (0, 1, 2, 5)))

    def __len__(self) -> int:
        return len(self.geoms)

    def warm(self) -> FeatureIndex:
        """Project points and segment lines now, so that subsets share the work."""
        if len(self._points):
            _ = self._point_xy
        if len(self._lines):
            _ = self._segments
        return self

    def subset(self, sel: np.ndarray) -> FeatureIndex:
        """The features at sorted positions ``sel``, reusing projections already computed."""
        sel = np.asarray(sel, dtype=np.int64)
        new = FeatureIndex(self.geoms[sel], self.crs)
        keep = np.zeros(len(self), dtype=bool)
        keep[sel] = True
        if "_point_xy" in self.__dict__:
            new.__dict__["_point_xy"] = self._point_xy[keep[self._points]]
        if "_segments" in self.__dict__:
            new.__dict__["_segments"] = self._segments.subset(keep)
        if "projected" in self.__dict__:
            new.__dict__["projected"] = self.projected[sel]
        return new

    @cached_property
    def projected(self) -> np.ndarray:
        return project(self.geoms, self.crs)

    @cached_property
    def anchor_xy(self) -> np.ndarray:
        """One projected point per feature (the point itself, else a point on its surface)."""
        return transform_xy(shapely.get_coordinates(shapely.point_on_surface(self.geoms)), self.crs)

    @cached_property
    def tree(self) -> STRtree:
        """STRtree over all projected features (intersects / within-radius / fallbacks)."""
        return STRtree(self.projected)

    @cached_property
    def _point_xy(self) -> np.ndarray:
        return transform_xy(shapely.get_coordinates(self.geoms[self._points]), self.crs)

    @cached_property
    def _kd(self) -> cKDTree:
        return cKDTree(self._point_xy, balanced_tree=False, compact_nodes=False)

    @cached_property
    def _segments(self) -> _Segments:
        return _Segments.from_lines(self.geoms, self._lines, self.crs)

    @cached_property
    def _other_tree(self) -> STRtree:
        return STRtree(self.projected[self._others])

    def nearest(self, points: np.ndarray, max_distance: float | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Distance to, and index of, the nearest feature for each projected point.

        NaN / -1 where there is none (within ``max_distance`` when given).
        """
        n = len(points)
        dist = np.full(n, np.nan)
        idx = np.full(n, -1, dtype=np.int64)
        if n == 0 or len(self) == 0:
            return dist, idx
        xy = _xy(points)
        if len(self._points):
            d, i = _kd_nearest(self._kd, xy, max_distance)
            _merge(dist, idx, d, np.where(i >= 0, self._points[np.maximum(i, 0)], -1))
        if len(self._lines):
            d, i, unsure = self._segments.nearest(xy, max_distance)
            if unsure.any():  # rare: settle with an exact STRtree search
                lines = self.projected[self._lines]
                d[unsure], j = _tree_nearest(STRtree(lines), lines, _geoms(points[unsure]),
                                             max_distance)
                i[unsure] = np.where(j >= 0, self._lines[np.maximum(j, 0)], -1)
            _merge(dist, idx, d, i)
        if len(self._others):
            d, i = _tree_nearest(self._other_tree, self.projected[self._others],
                                 _geoms(points), max_distance)
            _merge(dist, idx, d, np.where(i >= 0, self._others[np.maximum(i, 0)], -1))
        return dist, idx

    def covered(self, points: np.ndarray, radius: np.ndarray, mask: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whether each projected point lies within some feature's own ``radius`` (0 = inside),
        among the features in ``mask`` (default all).

        Returns ``(covered, index, distance)``: the closest covering feature (-1: none) and its
        exact distance (NaN: none).
        """
        dist, idx = np.full(len(points), np.nan), np.full(len(points), -1, dtype=np.int64)
        mask = np.ones(len(self), dtype=bool) if mask is None else mask
        if len(points) and mask.any():
            qi, f, d = self._pairs_within(points, float(radius[mask].max()), mask)
            ok = d <= radius[f]
            _first_per_query(qi[ok], f[ok], d[ok], dist, idx)
        return idx >= 0, idx, dist

    def _pairs_within(self, points: np.ndarray, r: float, mask: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (point, feature in ``mask``) pair at most ``r`` apart, with the exact distance:
        point features and line segments through their k-d trees, others through an STRtree."""
        xy = _xy(points)
        qkd = cKDTree(xy, balanced_tree=False, compact_nodes=False)
        out = []
        if len(self._points) and mask[self._points].any():
            pairs = qkd.sparse_distance_matrix(self._kd, r, output_type="ndarray")
            f = self._points[pairs["j"]]
            ok = mask[f] & (pairs["v"] <= r)
            out.append((pairs["i"][ok], f[ok], pairs["v"][ok]))
        if len(self._lines) and mask[self._lines].any():
            seg = self._segments
            pairs = qkd.sparse_distance_matrix(seg.kd, r + seg.half, output_type="ndarray")
            qi, sj = pairs["i"], pairs["j"]
            f = seg.owner[sj]
            sel = mask[f]
            qi, sj, f = qi[sel], sj[sel], f[sel]
            d_ex = _packed_distance(xy[qi, 0], xy[qi, 1], seg._packed[sj])
            ok = d_ex <= r
            out.append((qi[ok], f[ok], d_ex[ok]))
        if len(self._others) and mask[self._others].any():
            others = self._others[mask[self._others]]
            geoms = _geoms(points)
            qi, fj = STRtree(self.projected[others]).query(geoms, predicate="dwithin", distance=r)
            out.append((qi, others[fj], shapely.distance(geoms[qi], self.projected[others][fj])))
        if not out:
            e = np.empty(0, dtype=np.int64)
            return e, e, np.empty(0)
        return tuple(np.concatenate(c) for c in zip(*out, strict=True))  # type: ignore[return-value]

    def any_intersecting(self, polygons: np.ndarray) -> np.ndarray:
        """Whether each projected polygon intersects at least one feature."""
        out = np.zeros(len(polygons), dtype=bool)
        if len(polygons) == 0 or len(self) == 0:
            return out
        qi, _ = self.tree.query(polygons, predicate="intersects")
        out[qi] = True
        return out


def _xy(points: np.ndarray) -> np.ndarray:
    """Query points as an (n, 2) coordinate array: given as one, or as point geometries."""
    points = np.asarray(points)
    return points if points.dtype != object else shapely.get_coordinates(points)


def _geoms(points: np.ndarray) -> np.ndarray:
    """Query points as point geometries (for the STRtree searches)."""
    points = np.asarray(points)
    return points if points.dtype == object else shapely.points(points)


class _Segments:
    """Line features as short projected segments, with a k-d tree on their midpoints.

    Held as the packed form the distance kernel reads (:func:`_pack`: start, direction,
    1 / squared length), the midpoints and the owners: 64 bytes a segment (at national size a
    band holds millions). ``owner`` holds each segment's feature position in the parent
    :class:`FeatureIndex`.
    """

    def __init__(self, packed: np.ndarray, mid: np.ndarray, owner: np.ndarray) -> None:
        self._packed, self.mid, self.owner = packed, mid, owner
        self.half = float(np.hypot(packed[:, 2], packed[:, 3]).max() / 2) if len(owner) else 0.0

    @classmethod
    def from_lines(cls, geoms: np.ndarray, lines: np.ndarray, crs: str) -> _Segments:
        lg = geoms[lines]
        if (shapely.get_type_id(lg) == 5).any():  # multi-lines: one run of vertices per part
            parts, part_owner = shapely.get_parts(lg, return_index=True)
        else:
            parts, part_owner = lg, np.arange(len(lg))
        coords, part_of = shapely.get_coordinates(parts, return_index=True)
        xy = transform_xy(coords, crs)
        same = part_of[1:] == part_of[:-1]
        a, b = xy[:-1][same], xy[1:][same]
        owner = lines[part_owner[part_of[:-1][same]]]
        del xy, coords, part_of
        # split long segments so every half-length is at most SEGMENT_M / 2
        start, end, rep = split_segments(a, b, SEGMENT_M)
        del a, b
        return cls(_pack(start, end), (start + end) / 2, owner[rep])

    def __len__(self) -> int:
        return len(self.owner)

    def subset(self, keep: np.ndarray) -> _Segments:
        """Segments of the features marked in ``keep``, owners renumbered to the subset."""
        m = keep[self.owner]
        rank = np.cumsum(keep) - 1
        return _Segments(self._packed[m], self.mid[m], rank[self.owner[m]])

    @cached_property
    def kd(self) -> cKDTree:
        return cKDTree(self.mid, balanced_tree=False, compact_nodes=False)

    def nearest(self, xy: np.ndarray, max_distance: float | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact nearest line per point; ``unsure`` marks the rare points left undecided.

        Candidates are the k nearest midpoints, k growing (8, 64, 512) for points whose
        candidate set is not yet provably complete.
        """
        n = len(xy)
        dist = np.full(n, np.nan)
        idx = np.full(n, -1, dtype=np.int64)
        todo = np.arange(n)
        if len(self) == 0:
            return dist, idx, np.zeros(n, dtype=bool)
        for k in (K_CANDIDATES, K_CANDIDATES * 8, K_CANDIDATES * 64):
            d, i, unsure = self._candidates(xy[todo], min(k, len(self)), max_distance)
            done = todo[~unsure]
            dist[done], idx[done] = d[~unsure], i[~unsure]
            todo = todo[unsure]
            if len(todo) == 0:
                break
        unsure_mask = np.zeros(n, dtype=bool)
        unsure_mask[todo] = True
        return dist, idx, unsure_mask

    def _candidates(self, xy: np.ndarray, k: int, max_distance: float | None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(xy)
        big = np.iinfo(np.int64).max
        ub = np.inf if max_distance is None else float(max_distance) + self.half + 1e-6
        dm, j = self.kd.query(xy, k=k, distance_upper_bound=ub, workers=WORKERS)
        dm, j = dm.reshape(n, k), j.reshape(n, k)
        valid = np.isfinite(dm)
        jj = np.where(valid, j, 0)
        # (n, k, 5): one gather for all candidate segments
        d = np.where(valid, _packed_distance(xy[:, 0, None], xy[:, 1, None], self._packed[jj]),
                     np.inf)
        owner = np.where(valid, self.owner[jj], big)
        best = d.min(axis=1)
        # ties: the lowest owner among the candidates at the best distance
        own = np.where(d == best[:, None], owner, big).min(axis=1)
        limit = best if max_distance is None else np.minimum(best, max_distance)
        # complete when the farthest candidate midpoint is beyond reach, or fewer than k exist:
        # any other segment is then farther than its midpoint minus the longest half-segment
        # (when k covers every segment, the candidate set is all of them: complete too)
        unsure = valid[:, -1] & (dm[:, -1] <= limit + self.half) & (k < len(self))
        found = np.isfinite(best)
        if max_distance is not None:
            found &= best <= max_distance
        return (np.where(found, best, np.nan), np.where(found, own, -1).astype(np.int64),
                unsure)


def split_segments(a: np.ndarray, b: np.ndarray, max_len: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split segments ``a``-``b`` ((N, 2) each) into equal pieces no longer than ``max_len``.

    Returns the pieces' start and end points and, per piece, the index of its segment. A
    segment's first start and last end are its own endpoints exactly (so shared vertices stay
    shared).
    """
    length = np.hypot(*(b - a).T)
    pieces = np.maximum(np.ceil(length / max_len), 1).astype(np.int64)
    rep = np.repeat(np.arange(len(a)), pieces)
    k = (np.arange(len(rep)) - np.repeat(np.cumsum(pieces) - pieces, pieces))[:, None]
    p = pieces[rep][:, None]
    ar, d = a[rep], (b - a)[rep]
    start = np.where(k == 0, ar, ar + (k / p) * d)
    end = np.where(k + 1 == p, b[rep], ar + ((k + 1) / p) * d)
    return start, end, rep


def _pack(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per segment ``a``-``b``: start x, y, direction x, y and 1 / squared length (0 if
    degenerate), the form :func:`_packed_distance` reads."""
    ab = b - a
    den = np.einsum("ij,ij->i", ab, ab)
    inv = np.divide(1.0, den, out=np.zeros_like(den), where=den > 0)
    return np.column_stack([a, ab, inv])


def _packed_distance(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Distance from points (``x``, ``y``) to packed segments ``g`` (``[..., 5]``, broadcast)."""
    px = x - g[..., 0]
    py = y - g[..., 1]
    t = np.clip((px * g[..., 2] + py * g[..., 3]) * g[..., 4], 0, 1)
    px -= t * g[..., 2]
    py -= t * g[..., 3]
    return np.sqrt(px * px + py * py)


def _kd_nearest(kd: cKDTree, xy: np.ndarray, max_distance: float | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest point per query; among equidistant points the lowest index wins (up to K_TIES
    points at exactly the same distance; beyond that a remaining tie is settled by the tree)."""
    bound = np.inf if max_distance is None else float(max_distance) * (1 + 1e-12) + 1e-9

    def lowest(q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d, i = kd.query(q, k=k, distance_upper_bound=bound, workers=WORKERS)
        d, i = d.reshape(len(q), k), i.reshape(len(q), k)
        best = np.where(d == d[:, :1], i, np.iinfo(np.int64).max).min(axis=1)
        return d[:, 0], best, np.isfinite(d[:, 0]) & (d[:, -1] == d[:, 0])

    # two neighbours tell whether there is a tie; only tied points ask for K_TIES
    d0, best, tied = lowest(xy, min(2, kd.n))
    if tied.any() and kd.n > 2:
        t = np.flatnonzero(tied)
        _, best[t], _ = lowest(xy[t], min(K_TIES, kd.n))
    found = np.isfinite(d0)
    return np.where(found, d0, np.nan), np.where(found, best, -1).astype(np.int64)


def _tree_nearest(tree: STRtree, geoms: np.ndarray, points: np.ndarray,
                  max_distance: float | None) -> tuple[np.ndarray, np.ndarray]:
    n = len(points)
    dist = np.full(n, np.nan)
    idx = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return dist, idx
    (qi, fi), d = tree.query_nearest(points, max_distance=max_distance, return_distance=True,
                                     all_matches=True)
    _first_per_query(qi, fi, d, dist, idx)
    return dist, idx


def _merge(dist: np.ndarray, idx: np.ndarray, d: np.ndarray, i: np.ndarray) -> None:
    """Keep the closer of two answers per point (ties: the lower index), in place."""
    better = (i >= 0) & ((idx < 0) | (d < dist) | ((d == dist) & (i < idx)))
    dist[better] = d[better]
    idx[better] = i[better]


def _first_per_query(qi: np.ndarray, fi: np.ndarray, d: np.ndarray, dist: np.ndarray,
                     idx: np.ndarray) -> None:
    """For each query index, the smallest distance (ties: the lowest feature index), in place."""
    if len(qi) == 0:
        return
    order = np.lexsort((fi, d, qi))
    qi, fi, d = qi[order], fi[order], d[order]
    first = np.r_[True, qi[1:] != qi[:-1]]
    dist[qi[first]] = d[first]
    idx[qi[first]] = fi[first]
