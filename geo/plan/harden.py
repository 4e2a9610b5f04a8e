"""Road hardening along the road graph: harden the unpaved (or narrow) road that already leads
from the qualifying network to a gap village, when that is cheaper than a new road.

Per UTM zone of the gap villages, the unqualifying roads near them (within the longest
hardening each village could afford) become a :class:`geo.network.RoadGraph`; their vertices
shared with qualifying roads (junctions) are the sources of one multi-source Dijkstra, bounded
by that longest hardening (a shortest path never runs along a qualifying road: all its nodes are
at distance 0). A village
needs a qualifying road within its threshold, so its **hardening** is the shortest road path
from the qualifying network to any graph node within ``0.99 x threshold`` of the village
(:data:`geo.plan.params.REACH_SHARE`): length ``H = min over those nodes u of d(u)``. The village
is hardened when ``H x harden_unit_cost`` is at most what its own straight new line would cost
(``(distance_m - reach) x unit_cost``, or the standalone ``default_quantity`` when no qualifying
road is in reach); else it is left to the extension trees.

Shared roads are hardened once: the chosen paths form a shortest-path forest. Each node of it
belongs to the village, among those whose path passes through it, nearest to the network
(smallest ``H``, then lowest code); a village's chain is its nodes from its own up to where it
meets a nearer village's path or the network. A chain is cut where another village's path joins
it: the part below is the village's own work (``road:harden:CODE``), each part above a shared
trunk (``road:harden:CODE~K``, serving no village directly) that hangs from the next; ``parent``
is the work a piece meets. Villages sharing a node share a work. So a village's work and the
works it hangs from are exactly its shortest path, and the planned length is the union of the
paths (no road counted twice): both tested against a brute force. Vectorised: one Dijkstra per
zone, one k-d tree pair query, walkers climbing the forest in lock-step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from buque.geo.metric import bands_of, project
from buque.geo.network import MERGE_M, RoadGraph
from buque.geo.plan.network import pair_arrays
from buque.geo.plan.params import Costs


def _key(xy: np.ndarray) -> np.ndarray:
    """One int64 per point on the graph's merge grid (metric CRS coordinates)."""
    k = np.round(xy / MERGE_M).astype(np.int64)
    return k[:, 0] * 4_000_000_000 + k[:, 1]


def _source_nodes(graph: RoadGraph, qualifying_lines: np.ndarray) -> np.ndarray:
    """Nodes of ``graph`` (built from the unqualifying roads) that are vertices of qualifying
    roads: where a road joins the qualifying network (roads join at shared vertices)."""
    if not len(qualifying_lines) or graph.n_nodes == 0:
        return np.zeros(0, np.int64)
    xy = shapely.get_coordinates(qualifying_lines)
    return np.flatnonzero(np.isin(_key(graph.node_xy), _key(xy)))


def hardening_lengths(graph: RoadGraph, sources: np.ndarray, vxy: np.ndarray, reach_m: float,
                      limit_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per village: the hardening length ``H`` (NaN: no path within ``limit_m``) and its end
    node; and per node the network distance ``d`` and predecessor (-9999 at a source)."""
    n = len(vxy)
    length = np.full(n, np.nan)
    node = np.full(n, -1, np.int64)
    if not len(sources) or graph.n_nodes == 0 or n == 0:
        return length, node, np.full(graph.n_nodes, np.inf), np.full(graph.n_nodes, -9999)
    d, pred, _ = dijkstra(graph.graph, directed=False, indices=sources, min_only=True,
                          return_predecessors=True, limit=limit_m)
    near = cKDTree(vxy).sparse_distance_matrix(graph.kd, reach_m, output_type="coo_matrix")
    v, u = near.row.astype(np.int64), near.col.astype(np.int64)
    ok = np.isfinite(d[u])
    v, u = v[ok], u[ok]
    if len(v):
        order = np.lexsort((u, d[u], v))  # per village: the nearest node to the network first
        v, u = v[order], u[order]
        first = np.r_[True, v[1:] != v[:-1]]
        length[v[first]] = d[u[first]]
        node[v[first]] = u[first]
    return length, node, d, pred


def _chains(node: np.ndarray, rank: np.ndarray, d: np.ndarray, pred: np.ndarray
            ) -> np.ndarray:
    """Per graph node, the rank of the village owning it (-1: none): walkers climb from each
    village's node to the network, keeping the lowest rank (a walker stops where a lower one
    has passed: everything above is that one's already)."""
    nn = len(d)
    big = np.iinfo(np.int64).max
    owner = np.full(nn, big, np.int64)
    cur, vid = node.copy(), rank.copy()
    while len(cur):
        np.minimum.at(owner, cur, vid)
        go = (owner[cur] == vid) & (pred[cur] >= 0)
        cur, vid = pred[cur[go]], vid[go]
    return np.where(owner == big, -1, owner)


def harden_works(pairs: pd.DataFrame, roads: np.ndarray, qualifying: np.ndarray, cost: Costs
                 ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Hardening works for the road gap villages ``pairs`` (``village_code``, ``lon``, ``lat``,
    ``distance_m``, ``factor``), with ``roads`` the layer's geometries (EPSG:4326) and
    ``qualifying`` which of them qualify. Returns the works, per pair row its work's position
    (-1: not hardened, left to the extensions) and the mask of hardened rows."""
    n = len(pairs)
    at = np.full(n, -1, np.int64)
    if cost.harden_unit_cost is None or not n or not len(roads) or not qualifying.any():
        return pd.DataFrame(), at, at >= 0
    lon, lat, dist, codes, factor = pair_arrays(pairs)
    reach, default_m = cost.reach_m, cost.default_m
    own_m = np.where(np.isfinite(dist), np.maximum(dist - reach, 0.0), default_m)
    afford = own_m * cost.unit_cost / cost.harden_unit_cost  # the longest hardening worth it
    # exact prunings, in degrees generous enough for any latitude of the villages (a metre is
    # at most 1 / (110,000 cos lat) degrees): a village can be hardened only with an
    # unqualifying road within reach (a qualifying one there would have met it), and a road
    # is on an affordable path only within afford + reach of its village
    # no unqualifying road shares a vertex with a qualifying one: no path at all
    def ll_key(g: np.ndarray) -> np.ndarray:
        k = np.round(shapely.get_coordinates(g) * 1e7).astype(np.int64)
        return k[:, 0] * 4_000_000_000 + k[:, 1]

    if not np.isin(ll_key(roads[~qualifying]), ll_key(roads[qualifying])).any():
        return pd.DataFrame(), at, at >= 0
    per_deg = 110_000.0 * np.maximum(np.cos(np.radians(np.abs(lat))), 0.05)
    pts = shapely.points(lon, lat)
    nonq = np.flatnonzero(~qualifying)
    beside = np.zeros(n, bool)
    if len(nonq):
        hit = shapely.STRtree(roads[nonq]).query(pts, predicate="dwithin",
                                                  distance=reach / per_deg)
        beside[hit[0]] = True
    beside &= afford > 0
    if not beside.any():
        return pd.DataFrame(), at, at >= 0
    cand = np.flatnonzero(beside)
    hit = shapely.STRtree(roads).query(pts[cand], predicate="dwithin",
                                       distance=(afford[cand] + reach) / per_deg[cand])
    useful = np.zeros(len(roads), bool)
    useful[hit[1]] = True
    rows: list[pd.DataFrame] = []
    served_rows: list[pd.DataFrame] = []
    bands = list(bands_of(np.where(beside, lon, np.nan), lat))
    for band in bands:
        m = band.members
        limit = float(afford[m].max())
        near = useful
        if len(bands) > 1:  # the roads of this zone's villages
            hit = shapely.STRtree(roads[useful]).query(pts[m], predicate="dwithin",
                                                       distance=(afford[m] + reach) / per_deg[m])
            near = np.zeros(len(roads), bool)
            near[np.flatnonzero(useful)[np.unique(hit[1])]] = True
        if not (near & qualifying).any():
            continue
        lines = project(roads[near], band.crs)
        # a shortest path never runs along a qualifying road (its nodes are all at distance
        # 0): the graph holds the unqualifying roads, the sources are their junctions with
        # qualifying ones
        nq, qq = lines[~qualifying[near]], lines[qualifying[near]]
        if not np.isin(_key(shapely.get_coordinates(nq)), _key(shapely.get_coordinates(qq))
                       ).any():
            continue  # no unqualifying road joins a qualifying one here
        graph = RoadGraph.build(nq)
        src = _source_nodes(graph, qq)
        vxy = shapely.get_coordinates(project(shapely.points(lon[m], lat[m]), band.crs))
        h, node, d, pred = hardening_lengths(graph, src, vxy, reach, limit)
        take = np.isfinite(h) & (h > 0) & (h * cost.harden_unit_cost <= own_m[m] *
                                            cost.unit_cost)
        if not take.any():
            continue
        mv, nv = m[take], node[take]
        rank_of = np.empty(len(mv), np.int64)  # nearest the network first, then by code
        rank_of[np.lexsort((codes[mv], h[take]))] = np.arange(len(mv))
        owner = _chains(nv, rank_of, d, pred)
        by_rank = np.argsort(rank_of)                    # rank -> position in mv
        chain = np.flatnonzero((owner >= 0) & (pred >= 0))  # edges node -> pred[node]
        grp = owner[chain]
        order = np.lexsort((-d[chain], grp))
        chain, grp = chain[order], grp[order]
        start = np.r_[True, grp[1:] != grp[:-1]]
        last = np.r_[start[1:], True]
        # cut each village's chain where another village's path joins it: the part above is
        # a shared trunk (its own work, no village of its own) that both hang from
        joins = np.zeros(len(d), bool)
        joins[pred[chain[last]]] = True
        cut = start | joins[chain]
        piece = np.cumsum(cut) - 1
        piece_of = np.full(len(d), -1, np.int64)
        piece_of[chain] = piece
        p_first, p_last = chain[cut], chain[np.r_[cut[1:], True]]
        junction = pred[p_last]
        pts_node = np.r_[chain, junction]
        pts_grp = np.r_[piece, np.arange(len(p_first))]
        pts_key = np.r_[np.arange(len(chain)), np.flatnonzero(np.r_[cut[1:], True]) + 0.5]
        o = np.lexsort((pts_key, pts_grp))
        geom = shapely.linestrings(graph.node_xy[pts_node[o]], indices=pts_grp[o])
        p_owner = grp[cut]
        p_village = start[cut]  # the bottom piece of a chain: the village's own work
        p_parent = np.where(pred[junction] >= 0, piece_of[np.maximum(junction, 0)], -1)
        n_before = sum(len(r) for r in rows)
        rows.append(pd.DataFrame({
            "_v": mv[by_rank[p_owner]], "_own": p_village,
            "_k": np.arange(len(p_first)) - np.maximum.accumulate(  # trunk k of its chain
                np.where(p_village, np.arange(len(p_first)), 0)),
            "_parent": np.where(p_parent >= 0, p_parent + n_before, -1),
            "length": d[p_first] - d[junction], "geometry": project(geom, band.crs,
                                                                       inverse=True)}))
        # every hardened village: served by the bottom piece holding its node
        served_rows.append(pd.DataFrame({"_v": mv, "_w": piece_of[nv] + n_before}))
    if not rows:
        return pd.DataFrame(), at, at >= 0
    w = pd.concat(rows, ignore_index=True)
    served = pd.concat(served_rows, ignore_index=True)
    at[served["_v"].to_numpy()] = served["_w"].to_numpy()
    vcode = codes[w["_v"].to_numpy()]
    ids = np.where(w["_own"].to_numpy(), np.char.add(f"{cost.key}:harden:", vcode.astype(str)),
                   np.char.add(np.char.add(f"{cost.key}:harden:", vcode.astype(str)),
                               np.char.add("~", w["_k"].to_numpy().astype(str)))).astype(object)
    parent_pos = w["_parent"].to_numpy()
    top = np.arange(len(w))
    hop = parent_pos.copy()
    while (hop >= 0).any():  # cluster: the work that leaves the network
        live = hop >= 0
        top[live] = hop[live]
        hop[live] = parent_pos[hop[live]]
    qty = w["length"].to_numpy(float) / 1000.0  # a trunk: the factor of its chain's village
    unit_cost = cost.harden_unit_cost * factor[w["_v"].to_numpy()]
    works = pd.DataFrame({
        "work_id": ids, "indicator": cost.key, "action": "upgrade",
        "item": cost.harden_item or cost.item, "unit": "km", "quantity": np.round(qty, 4),
        "unit_cost": unit_cost, "cost": np.round(qty * unit_cost, 2),
        "parent": pd.array([ids[p] if p >= 0 else None for p in parent_pos], dtype="string"),
        "cluster": ids[top], "line_m": w["length"].to_numpy(float),
        "geometry": w["geometry"].to_numpy()})
    return works, at, at >= 0
