"""Road hardening along the road graph, on a small hand-made network (UTM zone 49N metres),
against an independent brute force: the graph split as documented (equal pieces of at most
50 m), Dijkstra with heapq from every vertex of the qualifying road, then per village the
nearest-to-the-network vertex within reach; and the village's own new line as the profile costs
it."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from buque.geo.plan.harden import harden_works
from buque.geo.plan.params import make_params
from buque.layers.profile import load_profile

X0, Y0 = 500_000.0, 3_320_000.0
TO_LL = Transformer.from_crs("EPSG:32649", "EPSG:4326", always_xy=True)
TO_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32649", always_xy=True)
ROADS = {  # name: (vertices in local metres, qualifies); no length a multiple of 50 m (the
    # lon/lat round trip must not change how many pieces a segment splits into)
    "Q": ([(0, 0), (1000, 0), (2000, 0)], True),
    "U1": ([(1000, 0), (1000, 1520), (1000, 2230), (1000, 3010)], False),
    "U2": ([(0, 0), (10, 2230), (1000, 2230)], False),  # a longer way round to U1's top
    "U3": ([(1000, 1520), (2510, 1520)], False),
    "U4": ([(2000, 0), (2000, -3010), (3010, -3010), (3010, 700)], False),  # too long to pay
}
VILLAGES = {"A": (1100, 2950), "B": (1050, 1600), "C": (2400, 1800), "D": (3000, 700),
            "F": (1050, 1610), "G": (-1500, 5000)}  # G: no road within reach


def ll(x, y):
    return TO_LL.transform(X0 + x, Y0 + y)


def brute(reach: float):
    """Vertices and edges of the split roads, distances from the qualifying road, and per
    village (H, the path's edges)."""
    adj: dict[tuple, list] = {}
    qual = set()
    for verts, q in ROADS.values():
        for (ax, ay), (bx, by) in zip(verts[:-1], verts[1:], strict=True):
            n = max(math.ceil(math.hypot(bx - ax, by - ay) / 50.0), 1)
            pts = [(round(ax + (bx - ax) * k / n, 3), round(ay + (by - ay) * k / n, 3))
                   for k in range(n + 1)]
            for p, r in zip(pts[:-1], pts[1:], strict=True):
                w = math.hypot(r[0] - p[0], r[1] - p[1])
                adj.setdefault(p, []).append((r, w))
                adj.setdefault(r, []).append((p, w))
                if q:
                    qual.update((p, r))
    dist = {p: 0.0 for p in qual}
    prev: dict[tuple, tuple] = {}
    heap = [(0.0, p) for p in qual]
    while heap:
        d, p = heapq.heappop(heap)
        if d > dist[p]:
            continue
        for r, w in adj[p]:
            if d + w < dist.get(r, math.inf) - 1e-9:
                dist[r], prev[r] = d + w, p
                heapq.heappush(heap, (d + w, r))
    out = {}
    for name, (vx, vy) in VILLAGES.items():
        near = [p for p in dist if math.hypot(p[0] - vx, p[1] - vy) <= reach]
        if not near:
            out[name] = (math.nan, set())
            continue
        best = min(near, key=lambda p: dist[p])
        edges, p = set(), best
        while p in prev:
            edges.add(frozenset((p, prev[p])))
            p = prev[p]
        out[name] = (dist[best], edges)
    return out


def own_line_m(x, y, reach, default_m):
    q = shapely.LineString(ROADS["Q"][0])
    return max(q.distance(shapely.Point(x, y)) - reach, 0.0)


def test_hardening_against_brute_force():
    cost = make_params(load_profile("national")).costs["road"]
    reach = cost.reach_m
    codes = sorted(VILLAGES)
    lonlat = [ll(*VILLAGES[c]) for c in codes]
    q = shapely.LineString(ROADS["Q"][0])
    pairs = pd.DataFrame({
        "village_code": codes, "lon": [p[0] for p in lonlat], "lat": [p[1] for p in lonlat],
        "distance_m": [q.distance(shapely.Point(VILLAGES[c])) for c in codes],
        "factor": 1.0})
    pairs.loc[pairs["village_code"] == "G", "distance_m"] = np.nan  # none in reach
    roads = np.array([shapely.LineString([ll(*p) for p in v]) for v, _ in ROADS.values()])
    qualifying = np.array([q for _, q in ROADS.values()])
    works, at, hardened = harden_works(pairs, roads, qualifying, cost)

    want = brute(reach)
    expect = {}
    for c in codes:
        h, _ = want[c]
        d = pairs.set_index("village_code").loc[c, "distance_m"]
        own = (max(d - reach, 0) if np.isfinite(d) else 1000 * cost.default_km) * cost.unit_cost
        expect[c] = bool(np.isfinite(h) and h > 0 and h * cost.harden_unit_cost <= own)
    assert expect == {"A": True, "B": True, "C": True, "D": False, "F": True, "G": False}
    assert dict(zip(codes, hardened.tolist(), strict=True)) == expect

    w = works.set_index("work_id")
    # B and F share one node: one work; every hardened village's path (its work and the works
    # it hangs from) is exactly the brute-force shortest path's length
    assert at[codes.index("B")] == at[codes.index("F")]
    for i, c in enumerate(codes):
        if not expect[c]:
            assert at[i] == -1
            continue
        wid, total = works["work_id"].iloc[at[i]], 0.0
        while isinstance(wid, str):
            total += w.loc[wid, "line_m"]
            wid = w.loc[wid, "parent"] if pd.notna(w.loc[wid, "parent"]) else None
        assert total == pytest.approx(want[c][0], abs=0.05), c
    # shared roads hardened once: the works' length is the union of the brute-force paths
    union = set().union(*(want[c][1] for c in codes if expect[c]))
    union_m = sum(math.dist(*tuple(e)) for e in union)
    assert works["line_m"].sum() == pytest.approx(union_m, abs=0.1)
    # each work's line is as long as it says, lies on an unpaved road, and is costed per km
    lines = shapely.transform(works.geometry.to_numpy(), lambda xy: np.column_stack(
        TO_UTM.transform(xy[:, 0], xy[:, 1])) - [X0, Y0])
    assert np.allclose(shapely.length(lines), works["line_m"], atol=0.5)
    unpaved = shapely.union_all([shapely.LineString(v) for v, q in ROADS.values() if not q])
    assert all(shapely.buffer(unpaved, 0.5).covers(g) for g in lines)
    assert np.allclose(works["cost"], works["line_m"] / 1000 * cost.harden_unit_cost, atol=0.01)
    assert set(works["action"]) == {"upgrade"}
    # C's path leaves U1 at the U3 junction: the part of A's chain below it is a shared trunk
    # (no village of its own) that A and C hang from; it hangs from B's work
    assert w.loc["road:harden:A", "parent"] == "road:harden:A~1"
    assert w.loc["road:harden:C", "parent"] == "road:harden:A~1"
    assert w.loc["road:harden:A~1", "parent"] == "road:harden:B"
    assert pd.isna(w.loc["road:harden:B", "parent"])
    assert set(works["cluster"]) == {"road:harden:B"} and len(works) == 4


def test_hardened_roads_meet_on_rerun(province, province_run, tmp_path):
    """The synthetic province with an unpaved road added from a paved road's vertex to 100 m
    short of each of 15 road-gap villages: the plan hardens them (and no other road work is
    needed for them); with every work funded, the scenario run meets every road pair and loses
    none that was met."""
    import shutil

    import geopandas as gpd
    import pyogrio

    from buque.geo.metric import bands_of, project
    from buque.geo.plan.archive import write_plan
    from buque.geo.plan.make import make_plan
    from buque.geo.plan.works import load_run
    from buque.geo.run import run_project

    d = tmp_path / "prov"
    shutil.copytree(province, d)
    inp = load_run(province_run)
    g = inp.gaps
    codes = sorted(g.loc[(g["indicator"] == "road") & (g["status"] == "missing"),
                         "village_code"].astype(str))[:15]
    v = inp.villages.set_index("code").loc[codes]
    roads = inp.layers["roads"]
    paved = roads[roads["evidence_road"] == "pass"]
    band = next(bands_of(v["ref_lon"].to_numpy(float), v["ref_lat"].to_numpy(float)))
    vp = project(gpd.points_from_xy(v["ref_lon"], v["ref_lat"]).to_numpy(), band.crs)
    pv = project(paved.geometry.to_numpy(), band.crs)
    xy, part = shapely.get_coordinates(pv, return_index=True)
    new = []
    for i, pt in enumerate(vp):
        p = np.array([pt.x, pt.y])
        k = int(np.argmin(np.hypot(*(xy - p).T)))  # the paved vertex nearest the village
        a = xy[k]
        q = p + (a - p) * (100.0 / np.hypot(*(a - p)))
        new.append({"id": f"U{i:03d}", "surface": "dirt", "width_m": 4.0, "highway": "track",
                    "geometry": shapely.LineString([a, q])})
    add = gpd.GeoDataFrame(new, geometry="geometry", crs=band.crs).to_crs(4326)
    src = pyogrio.read_dataframe(d / "roads.gpkg")
    both = pd.concat([src, add[src.columns]], ignore_index=True)
    pyogrio.write_dataframe(gpd.GeoDataFrame(both, geometry="geometry", crs=4326),
                            d / "roads.gpkg", layer="roads")
    run = run_project(d / "project.toml", tmp_path / "run")
    plan = make_plan(run.path if hasattr(run, "path") else tmp_path / "run")
    w = plan.works
    hard = w[w["work_id"].str.contains(":harden:")]
    served = set(plan.work_villages.loc[plan.work_villages["work_id"].isin(hard["work_id"]),
                                        "village_code"].astype(str))
    assert len(served & set(codes)) >= 10, sorted(served)
    assert (hard["action"] == "upgrade").all() and hard["funded"].all()
    write_plan(tmp_path / "plan", plan)
    rerun = run_project(d / "project.toml", tmp_path / "rerun", with_plan=tmp_path / "plan")
    a = pd.read_parquet(tmp_path / "run" / "gaps.parquet")
    b = pd.read_parquet(tmp_path / "rerun" / "gaps.parquet")
    m = a.merge(b, on=["village_code", "indicator"], suffixes=("_a", "_b"))
    assert len(m) == len(a) and rerun.manifest["plan"]
    assert not ((m["status_a"] == "met") & (m["status_b"] != "met")).any()
    road = m[m["indicator"] == "road"]
    assert not (road["status_b"] == "missing").any()
    assert (road.set_index("village_code").loc[sorted(served), "status_b"] == "met").all()
