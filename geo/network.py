"""Distance along the road network, in bulk, in a metric CRS.

The road layer becomes an undirected graph: lines are split into edges no longer than
``max_edge_m``, and vertices closer than ``merge_m`` (rounded to that grid) become one node, so
roads that share a vertex connect and roads that merely cross do not (as in OSM, where a junction
is a shared node). Points are snapped to their nearest node, not to the nearest point of an edge;
the snap is added as a straight line (a point on a road is within ``max_edge_m / 2`` of a node, but
its nearest node may lie on another road). Roads are two-way; one-way tags and speeds are ignored.

Performance contract (V nodes, E edges, N origins, M targets):

- :meth:`RoadGraph.build`: one sort of the split vertices, O(E log E); no Python loop over lines.
- :meth:`RoadGraph.distance_to_nearest`: two k-d tree queries, O((N + M) log V), and ONE
  multi-source Dijkstra (``scipy.sparse.csgraph.dijkstra``, ``min_only``), O(E + V log V),
  bounded by ``max_distance`` when given; then an O(E) pass that settles exact ties. Memory
  O(V + E + N + M). The answer never depends on the order of the targets: ties go to the
  lowest target index.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import shapely
from scipy.sparse import csr_array
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from buque.geo.nearest import _kd_nearest, split_segments

EDGE_M = 50.0  # longest edge; also bounds how far a node is from any point of its road
MERGE_M = 0.01  # vertices on the same MERGE_M grid cell are one node
SNAP_M = 1000.0  # points farther than this from every node are off the network


class RoadGraph:
    """An undirected road graph: node coordinates and a CSR matrix of edge lengths (metres).

    ``graph[i, j]`` (i < j) is the length of the shortest edge between nodes i and j; only the
    upper triangle is stored. Nodes are ordered by their rounded coordinates, so the numbering
    does not depend on the order of the input lines.
    """

    def __init__(self, node_xy: np.ndarray, graph: csr_array) -> None:
        self.node_xy = node_xy
        self.graph = graph

    @classmethod
    def build(cls, lines: np.ndarray, max_edge_m: float = EDGE_M, merge_m: float = MERGE_M
              ) -> RoadGraph:
        """The graph of projected (metric) LineStrings / MultiLineStrings; other types are ignored."""
        lines = np.asarray(lines, dtype=object)
        lines = lines[np.isin(shapely.get_type_id(lines), (1, 2, 5))]
        xy, part_of = shapely.get_coordinates(shapely.get_parts(lines), return_index=True)
        same = part_of[1:] == part_of[:-1]
        a, b = xy[:-1][same], xy[1:][same]
        start, end, rep = split_segments(a, b, max_edge_m)
        w = np.hypot(*(end - start).T)
        # nodes: unique vertices on the merge grid, numbered in (x, y) order
        key = np.round(np.concatenate([start, end]) / merge_m).astype(np.int64)
        order = np.lexsort((key[:, 1], key[:, 0]))
        ks = key[order]
        new = np.r_[True, (ks[1:] != ks[:-1]).any(axis=1)] if len(ks) else np.zeros(0, bool)
        node = np.empty(len(key), dtype=np.int64)
        node[order] = np.cumsum(new) - 1
        node_xy = ks[new] * merge_m
        u, v = node[: len(rep)], node[len(rep):]
        keep = u != v
        lo, hi, w = np.minimum(u, v)[keep], np.maximum(u, v)[keep], w[keep]
        # parallel edges between the same two nodes: keep the shortest
        order = np.lexsort((w, hi, lo))
        lo, hi, w = lo[order], hi[order], w[order]
        first = np.r_[True, (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])] if len(lo) else keep[:0]
        lo, hi, w = lo[first], hi[first], w[first]
        n = len(node_xy)
        indptr = np.r_[0, np.cumsum(np.bincount(lo, minlength=n))].astype(np.int32)
        return cls(node_xy, csr_array((w, hi.astype(np.int32), indptr), shape=(n, n)))

    @property
    def n_nodes(self) -> int:
        return self.graph.shape[0]

    @property
    def n_edges(self) -> int:
        return self.graph.nnz

    @cached_property
    def kd(self) -> cKDTree:
        """k-d tree over the nodes, for snapping."""
        return cKDTree(self.node_xy)

    @cached_property
    def _arcs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Both directions of every edge, sorted by tail: ``(tail, head, length)``."""
        g = self.graph
        lo = np.repeat(np.arange(self.n_nodes, dtype=np.int32), np.diff(g.indptr))
        tail, head = np.r_[lo, g.indices], np.r_[g.indices, lo]
        order = np.argsort(tail, kind="stable")
        return tail[order], head[order], np.r_[g.data, g.data][order]

    def snap(self, xy: np.ndarray, max_snap_m: float = SNAP_M) -> tuple[np.ndarray, np.ndarray]:
        """Distance to, and index of, the nearest node (ties: the lowest); NaN / -1 beyond reach."""
        if len(xy) == 0 or self.n_nodes == 0:
            return np.full(len(xy), np.nan), np.full(len(xy), -1, dtype=np.int64)
        return _kd_nearest(self.kd, np.asarray(xy, dtype=float), max_snap_m)

    def distance_to_nearest(self, origins_xy: np.ndarray, targets_xy: np.ndarray,
                            max_distance: float | None = None, max_snap_m: float = SNAP_M
                            ) -> tuple[np.ndarray, np.ndarray]:
        """Network distance from each origin to its nearest target, and that target's index.

        distance = origin snap + road distance between the snapped nodes + target snap. Each
        target enters one multi-source Dijkstra through a virtual node joined to its snapped
        node by an edge of its snap length, so the result is exact. NaN / -1 where no target is
        reachable (another component, off the network, or beyond ``max_distance``).
        """
        n = len(origins_xy)
        dist = np.full(n, np.nan)
        idx = np.full(n, -1, dtype=np.int64)
        limit = np.inf if max_distance is None else float(max_distance)
        t_snap, t_node = self.snap(targets_xy, max_snap_m)
        o_snap, o_node = self.snap(origins_xy, max_snap_m)
        # one source per snapped node: its nearest target (ties: the lowest index)
        t = np.flatnonzero((t_node >= 0) & (t_snap <= limit))
        t = t[np.lexsort((t, t_snap[t], t_node[t]))]
        t = t[np.r_[True, t_node[t][1:] != t_node[t][:-1]]] if len(t) else t
        if n == 0 or len(t) == 0:
            return dist, idx
        src_node, src_w = t_node[t].astype(np.int32), t_snap[t]
        g, nv, k = self.graph, self.n_nodes, len(t)
        aug = csr_array((np.r_[g.data, src_w], np.r_[g.indices, src_node],
                         np.r_[g.indptr, g.nnz + np.arange(1, k + 1)].astype(np.int32)),
                        shape=(nv + k, nv + k))
        d, _, src = dijkstra(aug, directed=False, indices=np.arange(nv, nv + k), min_only=True,
                             return_predecessors=True, limit=limit)
        d = d[:nv]
        label = np.where(src[:nv] >= 0, t[np.maximum(src[:nv], nv) - nv], -1)
        tight = d[src_node] == src_w  # a virtual edge on a shortest path
        np.minimum.at(label, src_node[tight], t[tight])
        self._settle_ties(d, label)
        reached = o_node >= 0
        total = np.full(n, np.inf)
        total[reached] = o_snap[reached] + d[o_node[reached]]
        found = np.isfinite(total) & (total <= limit)
        dist[found] = total[found]
        idx[found] = label[o_node[found]]
        return dist, idx

    def _settle_ties(self, d: np.ndarray, label: np.ndarray) -> None:
        """Lower each node's target to the lowest index among its equally near targets, in place.

        A target is equally near a node if a tight edge (``d[u] + w == d[v]``) leads there from a
        node it is equally near to; labels flow along tight edges from where they disagree. One
        O(E) check; a loop over hop levels runs only where distinct targets tie exactly.
        """
        tail, head, w = self._arcs
        ok = np.isfinite(d[head]) & (d[tail] + w == d[head])
        tail, head = tail[ok], head[ok]
        ptr = np.r_[0, np.cumsum(np.bincount(tail, minlength=len(d)))]
        front = np.unique(tail[label[tail] < label[head]])
        while len(front):
            cnt = ptr[front + 1] - ptr[front]
            arcs = np.repeat(ptr[front] - np.cumsum(cnt) + cnt, cnt) + np.arange(cnt.sum())
            a, b = tail[arcs], head[arcs]
            lower = label[a] < label[b]
            a, b = a[lower], b[lower]
            np.minimum.at(label, b, label[a])
            front = np.unique(b)
