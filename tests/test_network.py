"""Network distance (geo.network): hand-made graphs with answers worked out by hand, and a real
OSM road graph around Pal (Andorra) checked against an independent plain-Python Dijkstra."""

from __future__ import annotations

import heapq
import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from scipy.sparse.csgraph import dijkstra

from buque.geo.network import RoadGraph

FIX = Path(__file__).resolve().parent / "fixtures" / "network"
ROADS = FIX / "pal_roads.geojson"
PLACES = FIX / "pal_places.geojson"


def line(*xy: tuple[float, float]) -> shapely.LineString:
    return shapely.LineString(xy)


def graph(*lines: shapely.Geometry, **kw) -> RoadGraph:
    return RoadGraph.build(np.array(lines, dtype=object), **kw)


def query(g: RoadGraph, origins, targets, **kw) -> tuple[np.ndarray, np.ndarray]:
    return g.distance_to_nearest(np.array(origins, dtype=float).reshape(-1, 2),
                                 np.array(targets, dtype=float).reshape(-1, 2), **kw)


# a U-shaped road: (0,0) up to (0,40), across to (100,40), down to (100,0)
U = line((0, 0), (0, 40), (100, 40), (100, 0))


# --- hand-made graphs ---------------------------------------------------------------------------

def test_u_shaped_road_is_longer_than_the_straight_line():
    d, i = query(graph(U), [(0, 0)], [(100, 0)])
    assert d[0] == pytest.approx(180.0, abs=1e-9)  # 40 + 100 + 40, not 100
    assert i[0] == 0


def test_edges_are_split_and_nodes_merged():
    g = graph(U)  # 100 m top split in two at max_edge_m = 50; the 40 m legs stay whole
    assert (g.n_nodes, g.n_edges) == (5, 4)
    assert graph(U, max_edge_m=10).n_edges == 4 + 10 + 4
    # a second line ending 4 mm from the U's corner joins it; 2 cm away it does not
    near, far = line((0, 0.004), (-30, 0.004)), line((0, 0.02), (-30, 0.02))
    assert query(graph(U, near), [(-30, 0.004)], [(100, 0)])[0][0] == pytest.approx(210.0, abs=0.01)
    assert np.isnan(query(graph(U, far), [(-30, 0.02)], [(100, 0)])[0][0])


def test_snap_distances_are_added():
    # origin 5 m from node (0,0), target 10 m from node (100,0)
    d, i = query(graph(U), [(-3, 4)], [(106, -8)])
    assert d[0] == pytest.approx(5 + 180 + 10, abs=1e-9)
    # origin and target snapped to the same node: just the two snaps
    d, _ = query(graph(U), [(-3, 4)], [(0, -2)])
    assert d[0] == pytest.approx(7.0, abs=1e-9)
    # beyond max_snap_m: off the network
    d, i = query(graph(U), [(-3, 4), (0, 0)], [(106, -8)], max_snap_m=8)
    assert np.isnan(d).all() and (i == -1).all()


def test_target_snap_counts_in_the_choice_of_target():
    # two targets at the same node (100,0): the nearer one wins, whatever the order
    d, i = query(graph(U), [(0, 0)], [(100, -30), (100, -20)])
    assert i[0] == 1 and d[0] == pytest.approx(200.0, abs=1e-9)
    d, i = query(graph(U), [(0, 0)], [(100, -20), (100, -30)])
    assert i[0] == 0 and d[0] == pytest.approx(200.0, abs=1e-9)
    # a target far from its node loses to a farther node reached with no snap
    d, i = query(graph(U), [(0, 40)], [(-60, 40), (50, 40)])
    assert i[0] == 1 and d[0] == pytest.approx(50.0, abs=1e-9)


def test_disconnected_and_merely_crossing_roads():
    lone = line((200, 0), (300, 0))
    d, i = query(graph(U, lone), [(0, 0)], [(250, 0)])
    assert np.isnan(d[0]) and i[0] == -1
    # a road crossing the U's top at (70,40) without a shared vertex does not connect ...
    cross = line((70, 10), (70, 90))
    d, i = query(graph(U, cross), [(0, 0)], [(70, 90)])
    assert np.isnan(d[0]) and i[0] == -1
    # ... one sharing the vertex (70,40) does: 40 + 70 + 50
    u2 = line((0, 0), (0, 40), (70, 40), (100, 40), (100, 0))
    d, i = query(graph(u2, line((70, 10), (70, 40), (70, 90))), [(0, 0)], [(70, 90)])
    assert d[0] == pytest.approx(160.0, abs=1e-9) and i[0] == 0
    # the reachable target is chosen over a nearer unreachable one
    d, i = query(graph(U, lone), [(0, 0)], [(200, 0), (100, 0)])
    assert i[0] == 1 and d[0] == pytest.approx(180.0, abs=1e-9)


def test_ties_go_to_the_lowest_target_index():
    g = graph(U)
    for targets in ([(100, 0), (0, 0)], [(0, 0), (100, 0)]):  # (50,40) is 90 m from both ends
        d, i = query(g, [(50, 40)], targets)
        assert d[0] == pytest.approx(90.0, abs=1e-9) and i[0] == 0
    # duplicate targets at one point
    d, i = query(g, [(0, 0)], [(100, 0), (0, 40), (0, 40)])
    assert i[0] == 1 and d[0] == 40
    # a target snapped to the origin's node ties with one reached along the road
    g10 = graph(line((0, 0), (10, 0)))
    for targets in ([(0, -10), (10, 0)], [(10, 0), (0, -10)], [(0, -10), (0, -10), (10, 0)]):
        d, i = query(g10, [(0, 0)], targets)
        assert d[0] == 10 and i[0] == 0
    # a tie far from both targets, along a long equal-length corridor (propagated ties)
    ladder = [line((x, 0), (x + 10, 0)) for x in range(0, 200, 10)]
    d, i = query(graph(*ladder, max_edge_m=10), [(100, 0)], [(200, 0), (0, 0)])
    assert d[0] == 100 and i[0] == 0
    d, i = query(graph(*ladder, max_edge_m=10), [(100, 0)], [(0, 0), (200, 0)])
    assert d[0] == 100 and i[0] == 0


def test_max_distance():
    g = graph(U)
    d, i = query(g, [(0, 0), (0, 40), (-3, 4)], [(100, 0)], max_distance=180)
    np.testing.assert_array_equal(i, [0, 0, -1])  # the snap of 5 m puts the third at 185
    np.testing.assert_allclose(d[:2], [180, 140])
    d, i = query(g, [(0, 0)], [(100, 0)], max_distance=179.9)
    assert np.isnan(d[0]) and i[0] == -1
    # a target within the limit by road wins even if a nearer-by-air one is beyond it
    d, i = query(g, [(0, 0)], [(100, 0), (0, 40)], max_distance=50)
    assert i[0] == 1 and d[0] == 40


def test_parallel_edges_and_multilines_and_other_types():
    long_way = line((0, 0), (50, 30), (100, 0))  # two edges of ~58.3 m, merged nodes at both ends
    short = line((0, 0), (100, 0))
    mixed = np.array([long_way, shapely.MultiLineString([short.coords]), shapely.Point(0, 0), None],
                     dtype=object)
    d, _ = RoadGraph.build(mixed, max_edge_m=1000).distance_to_nearest(
        np.array([[0.0, 0.0]]), np.array([[100.0, 0.0]]))
    assert d[0] == pytest.approx(100.0, abs=1e-9)


def test_empty_inputs():
    g = graph(U)
    d, i = query(g, [(0, 0)], np.zeros((0, 2)))
    assert np.isnan(d[0]) and i[0] == -1
    d, i = query(g, np.zeros((0, 2)), [(0, 0)])
    assert d.shape == i.shape == (0,)
    d, i = query(RoadGraph.build(np.array([], dtype=object)), [(0, 0)], [(1, 1)])
    assert np.isnan(d[0]) and i[0] == -1


def _brute_force(g: RoadGraph, origins: np.ndarray, targets: np.ndarray, max_snap_m: float = 1000.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One single-source Dijkstra per target; the lexicographic (distance, index) minimum."""
    o_snap, o_node = g.snap(origins, max_snap_m)
    t_snap, t_node = g.snap(targets, max_snap_m)
    full = dijkstra(g.graph, directed=False, indices=np.maximum(t_node, 0))  # (M, V)
    full[t_node < 0] = np.inf  # targets off the network
    o_snap, t_snap = np.nan_to_num(o_snap), np.nan_to_num(t_snap)
    total = o_snap[None, :] + full[:, o_node] + t_snap[:, None]  # (M, N)
    total[:, o_node < 0] = np.inf  # origins off the network
    best = total.min(axis=0)
    idx = np.argmax(total == best[None, :], axis=0)  # the first (lowest) index at the minimum
    ok = np.isfinite(best)
    return np.where(ok, best, np.nan), np.where(ok, idx, -1)


def test_matches_brute_force_on_a_grid_with_many_exact_ties():
    # integer coordinates and axis-aligned offsets: every sum is exact, so ties are real
    rng = np.random.default_rng(7)
    n = 12
    lines = [line((0, y), (10 * (n - 1), y)) for y in range(0, 10 * n, 10)]
    lines += [line((x, 0), (x, 10 * (n - 1))) for x in range(0, 10 * n, 10)]
    lines += [line((200, 200), (230, 200))]  # a separate island
    g = graph(*lines, max_edge_m=10)
    assert g.n_edges == 2 * n * (n - 1) + 3
    def pts(k: int) -> np.ndarray:
        node = rng.integers(0, n, (k, 2)) * 10.0
        off = np.zeros((k, 2))
        off[np.arange(k), rng.integers(0, 2, k)] = rng.integers(-4, 5, k)
        return node + off
    origins, targets = np.r_[pts(300), [[210.0, 201.0]]], np.r_[pts(9), pts(9)]  # duplicates too
    d, i = g.distance_to_nearest(origins, targets)
    bd, bi = _brute_force(g, origins, targets)
    np.testing.assert_array_equal(d, bd)
    np.testing.assert_array_equal(i, bi)
    assert np.isnan(d[-1])
    # the same with the targets reversed: same distances, indices mapped back
    d2, i2 = g.distance_to_nearest(origins, targets[::-1])
    np.testing.assert_array_equal(d2, bd)
    _, bi2 = _brute_force(g, origins, targets[::-1])
    np.testing.assert_array_equal(i2, bi2)


# --- a real road graph: Pal, Andorra (© OpenStreetMap contributors, ODbL 1.0) -------------------

def _plain_dijkstra_distance(origin: tuple[float, float], target: tuple[float, float]) -> float:
    """Independent answer: vertices straight from the GeoJSON text, a heap Dijkstra in Python.

    Points snap to the nearest road vertex (the graph is built without splitting to match)."""
    feats = json.loads(ROADS.read_text())["features"]
    adj: dict[tuple[float, float], dict[tuple[float, float], float]] = {}
    for f in feats:
        geom = f["geometry"]
        parts = [geom["coordinates"]] if geom["type"] == "LineString" else geom["coordinates"]
        for part in parts:
            for (x0, y0), (x1, y1) in zip(part[:-1], part[1:], strict=True):
                a, b, w = (x0, y0), (x1, y1), math.hypot(x1 - x0, y1 - y0)
                if a != b:
                    adj.setdefault(a, {})[b] = min(w, adj.get(a, {}).get(b, math.inf))
                    adj.setdefault(b, {})[a] = min(w, adj.get(b, {}).get(a, math.inf))

    def snap(p: tuple[float, float]) -> tuple[tuple[float, float], float]:
        v = min(adj, key=lambda q: math.hypot(q[0] - p[0], q[1] - p[1]))
        return v, math.hypot(v[0] - p[0], v[1] - p[1])

    (s, ds), (t, dt) = snap(origin), snap(target)
    best = {s: 0.0}
    heap = [(0.0, s)]
    while heap:
        du, u = heapq.heappop(heap)
        if u == t:
            return ds + du + dt
        if du > best[u]:
            continue
        for v, w in adj[u].items():
            if du + w < best.get(v, math.inf):
                best[v] = du + w
                heapq.heappush(heap, (du + w, v))
    return math.nan


@pytest.fixture(scope="module")
def pal():
    roads = gpd.read_file(ROADS)
    places = gpd.read_file(PLACES).set_index("name")
    assert roads.crs.to_epsg() == 32631 and len(roads) == 43
    xy = {name: (p.x, p.y) for name, p in places.geometry.items()}
    return roads.geometry.values, xy


# two vertices on the switchbacks south-east of Pal: 385 m apart, 3.77 km apart by road
RIDGE_A, RIDGE_B = (375631.33, 4710658.11), (375455.43, 4711001.11)
ISLAND = (373867.2, 4710552.85)  # a vertex of a small component cut off by the box


def test_pal_to_super_pal_against_a_plain_dijkstra(pal):
    lines, xy = pal
    o, t = xy["Pal"], xy["Super Pal"]
    expected = _plain_dijkstra_distance(o, t)
    assert expected == pytest.approx(933.35, abs=0.01)  # recorded hand-check value
    d, i = RoadGraph.build(lines, max_edge_m=1e9).distance_to_nearest(np.array([o]), np.array([t]))
    assert i[0] == 0 and abs(d[0] - expected) < 0.01
    assert d[0] > 2 * math.dist(o, t)  # 377 m straight
    # a target on the 7-node component west of the box is unreachable
    d, i = RoadGraph.build(lines).distance_to_nearest(np.array([o]), np.array([ISLAND, t]))
    assert i[0] == 1 and np.isnan(_plain_dijkstra_distance(o, ISLAND))


def test_splitting_does_not_change_road_lengths(pal):
    lines, _ = pal
    pairs = [(RIDGE_A, RIDGE_B), ((375867.2, 4712340.37), RIDGE_B)]
    for a, b in pairs:
        expected = _plain_dijkstra_distance(a, b)
        for edge in (50.0, 10.0):
            d, _ = RoadGraph.build(lines, max_edge_m=edge).distance_to_nearest(np.array([a]),
                                                                                np.array([b]))
            assert abs(d[0] - expected) < 0.01


def test_across_the_switchbacks_the_road_is_ten_times_the_straight_line(pal):
    lines, _ = pal
    d, _ = RoadGraph.build(lines).distance_to_nearest(np.array([RIDGE_A]), np.array([RIDGE_B]))
    straight = math.dist(RIDGE_A, RIDGE_B)
    assert straight == pytest.approx(385.47, abs=0.01)
    assert d[0] == pytest.approx(3772.86, abs=0.01)
    assert d[0] > 9 * straight


def test_real_graph_components_lower_bound_and_order(pal):
    lines, xy = pal
    g = RoadGraph.build(lines)
    rng = np.random.default_rng(3)
    lo, hi = g.node_xy.min(axis=0), g.node_xy.max(axis=0)
    origins = rng.uniform(lo, hi, (2000, 2))
    targets = np.r_[rng.uniform(lo, hi, (15, 2)), [xy["Super Pal"]]]
    d, i = g.distance_to_nearest(origins, targets, max_snap_m=300)
    # some origins lie on small components (or > 300 m off road) that no target reaches
    assert 0 < np.isnan(d).sum() < len(d) and np.isfinite(d[~np.isnan(d)]).all()
    ok = i >= 0
    straight = np.hypot(*(origins[ok] - targets[i[ok]]).T)
    assert (d[ok] >= straight - 0.02).all()  # the straight line is a lower bound
    bd, bi = _brute_force(g, origins, targets, max_snap_m=300)
    np.testing.assert_allclose(d, bd, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(i, bi)
    assert np.isnan(g.snap(targets, 300)[0]).any()  # some targets are off the network
    # the graph does not depend on the order of the lines
    g2 = RoadGraph.build(lines[rng.permutation(len(lines))])
    np.testing.assert_array_equal(g2.node_xy, g.node_xy)
    d2, i2 = g2.distance_to_nearest(origins, targets, max_snap_m=300)
    np.testing.assert_array_equal(d2, d)
    np.testing.assert_array_equal(i2, i)
    # max_distance cuts exactly at the limit
    d3, i3 = g.distance_to_nearest(origins, targets, max_distance=500, max_snap_m=300)
    within = d <= 500
    np.testing.assert_array_equal(d3[within], d[within])
    assert np.isnan(d3[~within]).all() and (i3[~within] == -1).all()
