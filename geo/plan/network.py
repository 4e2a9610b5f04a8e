"""Network works: one tree of new line per cluster of gap villages, from the existing network.

For one indicator and one metric band (UTM zone), the gap villages and a root node standing for
the whole qualifying network form a graph: each village is joined to the root by the straight
line to its nearest qualifying feature (``distance_m`` of the run; a village with none in reach
gets a standalone supply of the profile's ``default_quantity`` km instead), and to the other gap
villages by the edges of their Delaunay triangulation (which holds every edge of the Euclidean
minimum spanning tree). The minimum spanning tree of that graph, rooted at the network, is the
Euclidean MST joining each gap village to the network or to another gap village; then every
leaf's line stops :data:`geo.plan.params.REACH_SHARE` x threshold short of it (it only has to be
within the threshold), and a leaf already that near its parent's line end adds no line at all
and shares its parent's work. So the planned length is at most that MST's length.

Each village's incoming edge is one work (``extend``; its ``parent`` work must be built first,
``cluster`` names the village whose edge leaves the network). Scipy's Delaunay, minimum spanning
tree and breadth-first order: O(n log n) per band, no Python loop over villages.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_array
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree
from scipy.spatial import Delaunay, QhullError

from buque.geo.metric import bands_of, project, transform_xy
from buque.geo.plan.params import Costs

EPS = 1e-6  # added to every edge weight so that zero-length edges stay edges of the sparse graph


def delaunay_edges(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of the Delaunay edges of ``xy``. A point Qhull leaves out (a duplicate
    or near-duplicate) is joined to the vertex it lies nearest; fewer than 4 points: all pairs."""
    n = len(xy)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    e = None
    if n >= 4:
        try:
            tri = Delaunay(xy)
            s = tri.simplices
            e = np.concatenate([s[:, [0, 1]], s[:, [1, 2]], s[:, [0, 2]]])
            if len(tri.coplanar):
                e = np.concatenate([e, tri.coplanar[:, [0, 2]]])
        except QhullError:  # all points on one line (or all equal): all pairs, few such bands
            e = None
    if e is None:
        e = np.column_stack(np.triu_indices(n, 1))
    a, b = np.minimum(e[:, 0], e[:, 1]), np.maximum(e[:, 0], e[:, 1])
    key = np.unique(a.astype(np.int64) * n + b)
    return key // n, key % n


def pair_arrays(pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                               np.ndarray]:
    """A gap-pair table's ``lon``, ``lat``, ``distance_m`` (NaN: no qualifying feature),
    ``village_code`` (str) and county cost ``factor`` as arrays."""
    return (pairs["lon"].to_numpy(float), pairs["lat"].to_numpy(float),
            pairs["distance_m"].to_numpy(float, na_value=np.nan),
            pairs["village_code"].astype(str).to_numpy(), pairs["factor"].to_numpy(float))


def spanning_tree(xy: np.ndarray, root_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parent of each point in the MST rooted at a virtual root (-1 = the root) joined to point
    i by an edge of length ``root_w[i]``, and the length of each point's edge to its parent."""
    n = len(xy)
    a, b = delaunay_edges(xy)
    w = np.hypot(*(xy[a] - xy[b]).T)
    rows = np.r_[np.zeros(n, np.int64), a + 1]
    cols = np.r_[np.arange(1, n + 1), b + 1]
    g = coo_array((np.r_[root_w, w] + EPS, (rows, cols)), shape=(n + 1, n + 1)).tocsr()
    t = minimum_spanning_tree(g)
    _, pred = breadth_first_order(t, 0, directed=False, return_predecessors=True)
    parent = pred[1:].astype(np.int64) - 1  # -1: the root
    pw = np.where(parent < 0, root_w, np.hypot(*(xy - xy[np.maximum(parent, 0)]).T))
    return parent, pw


def _jump(target: np.ndarray, hop: np.ndarray) -> np.ndarray:
    """Follow ``target[i] = target[hop[i]]`` where ``hop >= 0`` until it stops changing."""
    t = target.copy()
    h = hop.copy()
    while (h >= 0).any():
        live = h >= 0
        t[live] = t[h[live]]
        h[live] = hop[h[live]]
    return t


def network_works(pairs: pd.DataFrame, layer_geoms: pd.Series | None, cost: Costs
                  ) -> tuple[pd.DataFrame, np.ndarray]:
    """Extension works for one indicator's gap villages.

    ``pairs``: one row per gap village with ``village_code``, ``lon``, ``lat``, ``distance_m``
    (to the nearest qualifying feature, NaN if none), ``evidence_id`` and ``factor`` (the
    county cost factor); ``layer_geoms``: the layer's geometries (EPSG:4326) indexed by feature
    id. Returns the works and, per pair row, its work's position in them.
    """
    n = len(pairs)
    lon, lat, dist, codes, factor = pair_arrays(pairs)
    reach, default_m = cost.reach_m, cost.default_m
    out = {k: [] for k in ("pos", "parent", "cluster", "length", "standalone", "geometry")}
    for band in bands_of(lon, lat):
        m = band.members
        xy = transform_xy(np.column_stack([lon[m], lat[m]]), band.crs)
        pts = shapely.points(xy)
        # the line to the nearest qualifying feature: from the network to the village
        on_net = np.isfinite(dist[m])
        if layer_geoms is not None and on_net.any():
            g = layer_geoms.reindex(pairs["evidence_id"].to_numpy()[m][on_net]).to_numpy()
            has = ~pd.isna(g)
            on_net[np.flatnonzero(on_net)[~has]] = False
            feat = project(g[has], band.crs)
            root_line = np.full(len(m), None, dtype=object)
            root_line[on_net] = shapely.reverse(shapely.shortest_line(pts[on_net], feat))
        else:
            on_net[:] = False
            root_line = np.full(len(m), None, dtype=object)
        root_w = np.where(on_net, shapely.length(root_line), default_m)
        parent, w = spanning_tree(xy, root_w)
        leaf = np.bincount(parent[parent >= 0], minlength=len(m)) == 0
        standalone = (parent < 0) & ~on_net
        length = np.where(standalone, 0.0, np.where(leaf, np.maximum(w - reach, 0.0), w))
        start = np.where((parent < 0)[:, None], _start_points(root_line, xy),
                         xy[np.maximum(parent, 0)])
        frac = np.divide(length, w, out=np.zeros(len(m)), where=w > 0)
        end = start + (xy - start) * frac[:, None]
        geom = shapely.linestrings(np.stack([start, end], axis=1))
        geom = np.where(standalone, pts, geom)
        # back to lon/lat; a village's line is the edge from its parent (or the network)
        geom = project(geom, band.crs, inverse=True)
        out["pos"].append(m)
        out["parent"].append(np.where(parent >= 0, m[np.maximum(parent, 0)], -1))
        top = _jump(np.arange(len(m)), parent)  # the village whose edge leaves the network
        out["cluster"].append(m[top])
        out["length"].append(length)
        out["standalone"].append(standalone)
        out["geometry"].append(geom)
    if not out["pos"]:
        return pd.DataFrame(), np.zeros(0, np.int64)
    pos = np.concatenate(out["pos"])
    order = np.argsort(pos)
    parent, cluster, length, standalone, geom = (np.concatenate(out[k])[order] for k in
                                                 ("parent", "cluster", "length", "standalone",
                                                  "geometry"))
    # a village whose line would add nothing (within reach of its parent's line end) is served
    # by its parent's work; chains of such villages resolve to the first real work
    merged = (length <= 0) & ~standalone & (parent >= 0)
    owner = _jump(np.arange(n), np.where(merged, parent, -1))
    own = ~merged
    idx = np.flatnonzero(own)
    at = np.full(n, -1)
    at[idx] = np.arange(len(idx))
    work_of = at[owner]
    par = parent[idx]
    par_work = np.where(par >= 0, at[owner[np.maximum(par, 0)]], -1)
    qty = np.where(standalone[idx], default_m / 1000.0, length[idx] / 1000.0)
    unit_cost = cost.unit_cost * factor[idx]
    works = pd.DataFrame({
        "work_id": [f"{cost.key}:{c}" for c in codes[idx]],
        "indicator": cost.key,
        "action": np.where(standalone[idx], "build", "extend"),
        "item": cost.item, "unit": "km",
        "quantity": np.round(qty, 4),
        "unit_cost": unit_cost,
        "cost": np.round(qty * unit_cost, 2),
        "parent": pd.array([f"{cost.key}:{codes[idx[p]]}" if p >= 0 else None
                            for p in par_work], dtype="string"),
        "cluster": [f"{cost.key}:{c}" for c in codes[cluster[idx]]],
        "line_m": np.where(standalone[idx], 0.0, length[idx]),
        "geometry": geom[idx],
    })
    return works, work_of


def _start_points(root_line: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """The network end of each root line (the village itself where there is none)."""
    out = xy.copy()
    has = ~pd.isna(root_line)
    if has.any():
        out[has] = shapely.get_coordinates(root_line[has]).reshape(-1, 2, 2)[:, 0]
    return out
