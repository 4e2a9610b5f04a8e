"""A village's result does not depend on which other villages are in the run (issue 10).

A "county" cut of a project is run alone and inside the whole ("province"), with the same
feature layers; row by row, per (village, indicator): status, reason, evidence and candidate
exactly equal, distances to 1 mm. The reference points must agree too. Cases: bench.synth's
small province (it straddles the UTM 48/49 border at 108°E, so a county cut lies in one zone
while the whole spans two), a western "county" cut by a bounding box, the network profile
(distances along the roads), the Dask engine, and the Andorra OpenStreetMap demo cut by a
bounding box. Also: the distances are within 0.5% of geodesic.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod
from synth_world import DEMO_TOML

from bench.synth import generate
from buque.geo.gaps import assess
from buque.geo.run import load_layers, prepare_villages
from buque.layers.errors import Report
from buque.layers.profile import load_profile
from buque.layers.project import load_project
from buque.layers.schema import VILLAGE_LAYERS

KEY = ["village_code", "indicator"]
EXACT = ["level", "status", "reason", "evidence_id", "candidate_id"]
DIST = ["distance_m", "candidate_distance_m", "network_m"]
TOL_M = 1e-3


def _load(toml):
    report = Report()
    layers, _ = load_layers(load_project(toml), report)
    return layers


def _split(layers: dict) -> tuple[dict, dict]:
    return ({k: g for k, g in layers.items() if k in VILLAGE_LAYERS},
            {k: g for k, g in layers.items() if k not in VILLAGE_LAYERS})


def _cut(vlayers: dict, keep_admin) -> dict:
    """The village layers of a cut: the admin villages ``keep_admin`` selects, and the natural
    villages whose given parent is one of them."""
    admin = vlayers["villages"]
    a = admin.loc[keep_admin(admin)].reset_index(drop=True)
    out = {"villages": a}
    if "natural_villages" in vlayers:
        n = vlayers["natural_villages"]
        out["natural_villages"] = n.loc[n["village_code"].isin(a["code"])].reset_index(drop=True)
    return out


def _villages(vlayers: dict) -> gpd.GeoDataFrame:
    return prepare_villages(dict(vlayers), Report())


def differences(whole: pd.DataFrame, part: pd.DataFrame) -> dict[str, int]:
    """Per column, how many rows of ``part`` differ from the same (village, indicator) row of
    ``whole`` (exact for text, beyond 1 mm for distances)."""
    a = whole.drop(columns="_v").set_index(KEY)
    b = part.drop(columns="_v").set_index(KEY)
    assert b.index.is_unique and b.index.isin(a.index).all()
    a = a.loc[b.index]
    out = {}
    for c in EXACT:
        x, y = a[c].astype("string"), b[c].astype("string")
        out[c] = int((~((x == y).fillna(False) | (x.isna() & y.isna()))).sum())
    for c in DIST:
        x, y = a[c].to_numpy(float), b[c].to_numpy(float)
        same = (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= TOL_M)
        out[c] = int((~same).sum())
    out["rows"] = len(b)
    out["differing rows"] = int(sum(out[c] for c in [*EXACT, *DIST]) and
                                (~_row_same(a, b)).sum())
    return out


def _row_same(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    ok = np.ones(len(a), dtype=bool)
    for c in EXACT:
        x, y = a[c].astype("string"), b[c].astype("string")
        ok &= ((x == y).fillna(False) | (x.isna() & y.isna())).to_numpy()
    for c in DIST:
        x, y = a[c].to_numpy(float), b[c].to_numpy(float)
        ok &= (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= TOL_M)
    return ok


def assert_consistent(whole: pd.DataFrame, part: pd.DataFrame) -> None:
    diff = differences(whole, part)
    assert diff["differing rows"] == 0, diff


def assert_same_refs(whole_v: pd.DataFrame, part_v: pd.DataFrame) -> None:
    a = whole_v.set_index("code").loc[part_v["code"]]
    assert np.array_equal(a["ref_lon"].to_numpy(float), part_v["ref_lon"].to_numpy(float))
    assert np.array_equal(a["ref_lat"].to_numpy(float), part_v["ref_lat"].to_numpy(float))


# --------------------------------------------------------------------------- synthetic province

@pytest.fixture(scope="module")
def province(tmp_path_factory):
    out = tmp_path_factory.mktemp("province")
    # lon 107.50-109.00: across the UTM 48/49 border at 108°E
    generate(out, admin=1200, natural=8000, roads=12000, seed=3, verbose=False)
    vlayers, features = _split(_load(out / "project.toml"))
    return vlayers, features, _villages(vlayers)


def _cuts(vlayers):
    admin = vlayers["villages"]
    county = admin["county"].value_counts().index[0]
    west = admin.geometry.bounds["maxx"] < 107.9  # inside zone 48: far from the whole's centre
    return {"county": lambda a: a["county"] == county,
            "west": lambda a: a.index.isin(np.flatnonzero(west))}


@pytest.mark.parametrize("cut", ["county", "west"])
@pytest.mark.parametrize("standard", ["national", "national-network"])
def test_county_alone_equals_county_in_province(province, cut, standard):
    vlayers, features, whole_v = province
    part_v = _villages(_cut(vlayers, _cuts(vlayers)[cut]))
    assert 50 < (part_v["level"] == "admin").sum() < (whole_v["level"] == "admin").sum() / 3
    assert_same_refs(whole_v, part_v)
    profile = load_profile(standard)
    whole = assess(whole_v, features, profile)
    part = assess(part_v, features, profile)
    assert_consistent(whole, part)
    if standard == "national-network":
        assert part["network_m"].notna().sum() > 20  # along-road distances were compared


def test_reference_point_in_own_utm_zone(province):
    """A polygon village's reference point: point_on_surface in the UTM zone holding the centre
    of its lon/lat bounds, alone or with any other villages."""
    from pyproj import Transformer

    from buque.geo.crs import utm_epsg
    from buque.geo.villages import reference_points

    admin = province[0]["villages"]
    geoms = admin.geometry.to_numpy()[:40]
    lon, lat = reference_points(geoms)
    for k, g in enumerate(geoms):
        xmin, ymin, xmax, ymax = g.bounds
        tr = Transformer.from_crs("EPSG:4326", f"EPSG:{utm_epsg((xmin + xmax) / 2, (ymin + ymax) / 2)}",
                                  always_xy=True)
        pos = shapely.point_on_surface(shapely.transform(
            g, lambda xy, tr=tr: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))))
        x, y = tr.transform(pos.x, pos.y, direction="INVERSE")
        assert (lon[k], lat[k]) == pytest.approx((x, y), abs=1e-9)
        alone = reference_points(geoms[k:k + 1])
        assert (alone[0][0], alone[1][0]) == (lon[k], lat[k])


# --------------------------------------------------------------------------- the Dask engine

def test_dask_county_alone_equals_province(province, scheduler):
    from buque.geo.distributed import assess_dask

    vlayers, features, whole_v = province
    profile = load_profile("national")
    part_v = _villages(_cut(vlayers, _cuts(vlayers)["county"]))
    whole = assess_dask(whole_v, features, profile, scheduler, partitions=6)
    part = assess_dask(part_v, features, profile, scheduler, partitions=3)
    assert_consistent(whole, part)
    assert_consistent(assess(whole_v, features, profile), part)


# --------------------------------------------------------------------------- the Andorra demo

def test_andorra_parish_alone_equals_andorra():
    vlayers, features = _split(_load(DEMO_TOML))
    whole_v = _villages(vlayers)
    admin = vlayers["villages"]
    c = shapely.centroid(admin.geometry.to_numpy())
    # a "county": the villages north-west of Andorra la Vella (La Massana / Ordino)
    box = (1.40, 42.52, 1.53, 42.66)
    inside = (shapely.get_x(c) >= box[0]) & (shapely.get_x(c) <= box[2]) & \
             (shapely.get_y(c) >= box[1]) & (shapely.get_y(c) <= box[3])
    part_v = _villages(_cut(vlayers, lambda a: inside))
    assert 3 <= (part_v["level"] == "admin").sum() < (whole_v["level"] == "admin").sum()
    assert_same_refs(whole_v, part_v)
    profile = load_profile("national")
    assert_consistent(assess(whole_v, features, profile), assess(part_v, features, profile))


# --------------------------------------------------------------------------- accuracy

def test_distances_within_half_a_percent_of_geodesic():
    """Over China's latitudes (18-53°N) and longitudes (72-132°E), villages on UTM zone edges
    and centres, features up to 150 km away in any direction (across zone edges too)."""
    rng = np.random.default_rng(10)
    n = 1500
    zone_w = 72.0 + 6.0 * rng.integers(0, 10, n)  # western edges of zones 43..52
    off = np.where(rng.random(n) < 0.5, rng.choice([0.0, 1e-9, 6 - 1e-9, 3.0], n),
                   rng.uniform(0, 6, n))
    lon = zone_w + off
    lat = rng.uniform(18.0, 53.0, n)
    az = rng.uniform(-180, 180, n)
    dist = np.exp(rng.uniform(np.log(50.0), np.log(150_000.0), n))
    flon, flat, _ = Geod(ellps="WGS84").fwd(lon, lat, az, dist)
    v = gpd.GeoDataFrame({"code": [f"V{i}" for i in range(n)], "level": "natural",
                          "ref_lon": lon, "ref_lat": lat}, geometry=shapely.points(lon, lat),
                         crs="EPSG:4326")
    # one water point per village; the nearest may be another village's: checked all the same
    water = gpd.GeoDataFrame({"id": [f"W{i}" for i in range(n)], "kind": "tap", "safe": True},
                             geometry=shapely.points(flon, flat), crs="EPSG:4326")
    g = assess(v, {"water": water}, load_profile("national"))
    g = g[g["indicator"] == "water"].set_index("village_code").loc[v["code"]]
    ev = g["evidence_id"].str.slice(1).astype(int).to_numpy()
    _, _, geo = Geod(ellps="WGS84").inv(lon, lat, flon[ev], flat[ev])
    d = g["distance_m"].to_numpy(float)
    assert np.isfinite(d).all()
    rel = np.abs(d / geo - 1)
    assert rel.max() < 0.005, rel.max()
    print(f"max relative error vs geodesic: {rel.max():.5%}; median {np.median(rel):.5%}")
    assert (geo > 50_000).sum() > 50 and (geo < 1000).sum() > 10  # long and short distances


def test_far_features_across_the_zone_edge_within_half_a_percent():
    """The worst case the windows allow: a village on its zone's edge, its only feature ~2.9°
    of longitude beyond it (near the far side of the MARGIN_DEG window)."""
    lat = np.array([18.0, 30.0, 42.0, 53.0])
    lon = np.array([114.0 - 1e-9, 120.0 + 1e-9, 96.0 - 1e-9, 126.0 + 1e-9])  # zone edges
    flon = lon + np.array([2.9, -2.9, 2.9, -2.9])
    v = gpd.GeoDataFrame({"code": list("ABCD"), "level": "natural", "ref_lon": lon,
                          "ref_lat": lat}, geometry=shapely.points(lon, lat), crs="EPSG:4326")
    water = gpd.GeoDataFrame({"id": list("ABCD"), "kind": "tap", "safe": True},
                             geometry=shapely.points(flon, lat), crs="EPSG:4326")
    g = assess(v, {"water": water}, load_profile("national"))
    g = g[g["indicator"] == "water"].set_index("village_code").loc[list("ABCD")]
    assert (g["evidence_id"].to_numpy() == np.array(list("ABCD"))).all()
    _, _, geo = Geod(ellps="WGS84").inv(lon, lat, flon, lat)
    rel = np.abs(g["distance_m"].to_numpy(float) / geo - 1)
    assert rel.max() < 0.003, rel
