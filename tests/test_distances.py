"""Distances and statuses against an independent computation (tests/refcalc.py).

For every village and every indicator of the profile, the test decides from the profile's TOML
text which features qualify, measures geodesic distances from the village's reference point,
and applies the rule itself; the engine's gaps.parquet must agree: same rows, distance within
max(1 m, 0.5 %), evidence_id one of the nearest qualifying features, same status (except where
a deciding distance is within the contract's 0.5 % of a threshold).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import refcalc
import shapely
from pyproj import Transformer
from refcalc import Expected, applies, classify, expect, tolerance


def _spatial(profile: dict) -> dict:
    """The profile's spatial indicators (register ones, e.g. housing, need a household register
    and are checked against an independent count in tests/test_households.py)."""
    return {k: i for k, i in profile["indicators"].items() if i["rule"] != "register"}


def compare(villages: pd.DataFrame, gaps: pd.DataFrame, layers: dict, profile: dict,
            sources: dict[str, dict] | None = None, coverage_evidence: bool = True
            ) -> tuple[list[str], int]:
    """All disagreements between the run and the reference computation, and the pairs checked."""
    problems: list[str] = []
    checked = 0
    g = gaps.set_index(["village_code", "indicator"])
    assert not g.index.duplicated().any(), "one row per (village, indicator)"
    classes = {k: classify(layers[i["layer"]], i) for k, i in _spatial(profile).items()
               if i["layer"] in layers}
    for v in villages.itertuples(index=False):
        rec = v._asdict()
        if sources is not None:
            rec.update(sources[rec["code"]])   # attributes straight from the source files
        for key, ind in _spatial(profile).items():
            here = (rec["code"], key) in g.index
            if not applies(rec, ind):
                if here:
                    problems.append(f"{rec['code']}/{key}: assessed but not applicable")
                continue
            if not here:
                problems.append(f"{rec['code']}/{key}: applicable but not assessed")
                continue
            row = g.loc[(rec["code"], key)]
            feats = layers[ind["layer"]]
            exp: Expected = expect(rec, v.geometry, ind, feats, classes[key],
                                   feats["id"].astype(str).to_numpy())
            checked += 1
            got = row["distance_m"]
            where = f"{rec['code']}/{key}"
            if np.isnan(exp.distance) != pd.isna(got):
                problems.append(f"{where}: distance {got} vs expected {exp.distance}")
            elif not np.isnan(exp.distance) and abs(got - exp.distance) > tolerance(exp.distance):
                problems.append(f"{where}: distance {got:.3f} vs geodesic {exp.distance:.3f}")
            ev = row["evidence_id"]
            check_ev = ind["rule"] != "coverage" or coverage_evidence
            if check_ev and (pd.isna(ev) != (not exp.nearest_ids) or (
                    not pd.isna(ev) and ev not in exp.nearest_ids)):
                problems.append(f"{where}: evidence {ev} not a nearest qualifying feature "
                                    f"{sorted(exp.nearest_ids)}")
            if not exp.borderline and row["status"] != exp.status:
                problems.append(f"{where}: status {row['status']} vs expected {exp.status}")
    return problems, checked


def _profile_indicator_rules(gaps: pd.DataFrame, profile: dict) -> list[str]:
    """The engine's own consistency: for within_distance, met <=> distance <= threshold."""
    bad = []
    for key, ind in _spatial(profile).items():
        if ind["rule"] != "within_distance":
            continue
        g = gaps[gaps["indicator"] == key]
        within = (g["distance_m"] <= ind["threshold_m"]).fillna(False).to_numpy(bool)
        met = (g["status"] == "met").to_numpy(bool)
        for code in g.loc[within != met, "village_code"]:
            bad.append(f"{code}/{key}")
        # missing means nothing qualifying inside the threshold
        miss = (g["status"] == "missing").to_numpy(bool)
        assert not (miss & within).any()
    return bad


# --------------------------------------------------------------------------- the real data

@pytest.fixture(scope="module")
def andorra(andorra_run, andorra_layers):
    run = andorra_run.out
    return (gpd.read_parquet(run / "villages.parquet"), pd.read_parquet(run / "gaps.parquet"),
            andorra_layers[0])


def test_andorra_distances_and_statuses_match_geodesic_reference(andorra, national_toml):
    villages, gaps, layers = andorra
    problems, checked = compare(villages, gaps, layers, national_toml, coverage_evidence=False)
    # 34 admin x (road, clinic, broadband) + 34 natural x (road, water, power)
    assert checked == 34 * 3 + 34 * 3
    assert problems == []


def test_andorra_statuses_consistent_with_thresholds(andorra, national_toml):
    _, gaps, _ = andorra
    assert _profile_indicator_rules(gaps, national_toml) == []


def test_andorra_reference_points_are_the_village_points(andorra):
    villages, _, _ = andorra
    # every OSM place is a node (or a hamlet area reduced to a point): its own reference
    assert set(villages.geom_type) == {"Point"}
    assert np.allclose(villages["ref_lon"], villages.geometry.x, atol=1e-9)
    assert np.allclose(villages["ref_lat"], villages.geometry.y, atol=1e-9)


# --------------------------------------------------------------------------- synthetic data

@pytest.fixture(scope="module")
def synthetic(synth, synth_cli_run):
    run = synth_cli_run.out
    villages = gpd.read_parquet(run / "villages.parquet")
    src = {}
    for r in synth.admin.itertuples():
        src[r.code] = {"level": "admin", "households": r.households}
    for r in synth.natural.itertuples():
        src.setdefault(r.code, {"level": "natural", "households": r.households})
    return villages, pd.read_parquet(run / "gaps.parquet"), synth.layers, src


def test_synthetic_distances_and_statuses_match_geodesic_reference(synthetic, national_toml):
    villages, gaps, layers, src = synthetic
    problems, checked = compare(villages, gaps, layers, national_toml, sources=src,
                                coverage_evidence=False)
    # 5 admin x 3 indicators; naturals: N1, N3, N4, N5 x 3 and N2 (12 households) x 2
    assert checked == 5 * 3 + 4 * 3 + 2
    assert problems == []


def test_synthetic_statuses_consistent_with_thresholds(synthetic, national_toml):
    _, gaps, _, _ = synthetic
    assert _profile_indicator_rules(gaps, national_toml) == []


def test_synthetic_expected_cases(synthetic):
    """The constructed situations, spelled out (guards the reference itself)."""
    _, gaps, _, _ = synthetic
    s = gaps.set_index(["village_code", "indicator"])["status"]
    from synth_world import CODE_V1, CODE_V2, CODE_V3, CODE_V4, CODE_W1

    assert s[(CODE_V1, "road")] == "met"          # 沥青 road R1 at 300 m
    assert s[(CODE_V3, "road")] == "missing"      # only a 砂石 (gravel) road nearby
    assert s[("N1", "road")] == "missing"         # 水泥 road 400 m away is 3.0 m wide (< 3.5)
    assert s[("N3", "road")] == "unknown"         # road of unrecorded surface at 200 m
    assert s[(CODE_W1, "road")] == "met"          # across the UTM 48/49 border
    assert ("N2", "road") not in s.index          # 12 households: below the 30 of the profile
    assert s[("N3", "water")] == "missing"        # spring recorded unsafe (否)
    assert s[("N5", "water")] == "unknown"        # kind and safety both unrecorded
    # power_supply: a 0.4 kV line of no kind 200 m away is beyond the 100 m connection
    assert s[("N2", "power")] == "missing"
    assert s[("N4", "power")] == "missing"        # a pole is not power evidence
    assert s[(CODE_V1, "clinic")] == "met"        # standardized clinic inside
    assert s[(CODE_V2, "clinic")] == "missing"    # non-standardized clinic inside
    assert s[(CODE_V3, "clinic")] == "unknown"    # clinic of unknown standard inside
    assert s[(CODE_V4, "clinic")] == "missing"
    assert s[(CODE_V2, "broadband")] == "met"     # inside a coverage polygon
    assert s[(CODE_V3, "broadband")] == "met"     # tower without radius: default 3 km
    assert s[(CODE_V4, "broadband")] == "missing"
    d = gaps.set_index(["village_code", "indicator"])["distance_m"]
    assert d[(CODE_V2, "broadband")] == 0.0


def test_points_project_fallback_distance(synth, synth_points_run, national_toml):
    """Villages given as points: clinic by the 2 km fallback, distances still geodesic."""
    run = synth_points_run.out
    villages = gpd.read_parquet(run / "villages.parquet")
    gaps = pd.read_parquet(run / "gaps.parquet")
    src = {r.code: {"level": "admin", "households": 100} for r in synth.admin_points.itertuples()}
    for r in synth.natural.itertuples():
        src.setdefault(r.code, {"level": "natural", "households": r.households})
    problems, checked = compare(villages, gaps, synth.layers, national_toml, sources=src,
                                coverage_evidence=False)
    assert checked == 2 * 3 + 4 * 3 + 2
    assert problems == []
    from synth_world import CODE_P1, CODE_P2

    s = gaps.set_index(["village_code", "indicator"])
    assert s.loc[(CODE_P1, "clinic"), "status"] == "met"       # standardized clinic at 1.5 km
    assert s.loc[(CODE_P1, "clinic"), "reason"] == "within_threshold"
    assert s.loc[(CODE_P2, "clinic"), "status"] == "missing"   # nearest is 4.5 km away
    assert s.loc[(CODE_P2, "clinic"), "distance_m"] == pytest.approx(4500, rel=0.005)


def test_reference_points_of_polygon_villages(synth, synthetic):
    """Given centre when present, else a point_on_surface (inside, even for an L shape).

    Which interior point depends on the metric projection (GEOS scans a horizontal line), so
    only "inside the polygon" is asserted for those.
    """
    villages, _, _, _ = synthetic
    checked = 0
    admin = villages[villages["level"] == "admin"].set_index("code")
    src = synth.admin.set_index("code")
    for code, v in admin.iterrows():
        ref = shapely.Point(v["ref_lon"], v["ref_lat"])
        poly = src.loc[code, "geometry"]
        if pd.notna(src.loc[code, "ref_lon"]):
            assert (v["ref_lon"], v["ref_lat"]) == pytest.approx(
                (src.loc[code, "ref_lon"], src.loc[code, "ref_lat"]), abs=1e-9)
            continue
        assert poly.contains(ref), code
        checked += 1
    assert checked == 4
    # the L-shaped village: its centroid is outside, its reference inside
    from synth_world import CODE_V4

    assert not src.loc[CODE_V4, "geometry"].contains(src.loc[CODE_V4, "geometry"].centroid)


def test_coverage_evidence_id_is_the_feature_at_distance_m(synthetic, national_toml):
    """王家村: tower B3 (radius 200 m) is 500 m away, tower B4 (default 3 km) 1.6 km away."""
    villages, gaps, layers, src = synthetic
    problems, _ = compare(villages, gaps, layers, national_toml, sources=src,
                          coverage_evidence=True)
    assert problems == []


def test_reference_is_itself_checked():
    """refcalc's geodesic distances against known values (so the reference can fail too)."""
    # one degree of latitude at the equator on WGS84: 110574.4 m; a line 1 km east of a point
    assert refcalc.geodesic_distances(0.0, 0.0, np.array([shapely.Point(0, 1)]))[0] == \
        pytest.approx(110574.39, abs=0.05)
    tr = Transformer.from_crs("+proj=aeqd +lat_0=32.7 +lon_0=109 +datum=WGS84", "EPSG:4326",
                              always_xy=True)
    (x0, x1), (y0, y1) = tr.transform([1000, 1000], [-5000, 5000])
    d = refcalc.geodesic_distances(109.0, 32.7, np.array([shapely.LineString([(x0, y0),
                                                                             (x1, y1)])]))
    assert d[0] == pytest.approx(1000, abs=0.5)


def test_engine_handles_an_empty_layer_and_many_way_ties() -> None:
    """An empty feature layer gives 'no qualifying feature', and of three identical points
    at the same place the lowest index is the evidence."""
    import geopandas as gpd
    import numpy as np
    import shapely

    from buque.geo.gaps import assess
    from buque.layers.profile import load_profile

    prof = load_profile("national")
    v = gpd.GeoDataFrame({"code": ["a", "b"], "level": ["admin", "admin"],
                          "ref_lon": [109.0, 109.01], "ref_lat": [32.0, 32.0],
                          "households": [50, 50]},
                         geometry=shapely.points([[109.0, 32.0], [109.01, 32.0]]), crs="EPSG:4326")
    pt = shapely.Point(109.0, 32.001)
    clinics = gpd.GeoDataFrame({"id": ["c3", "c1", "c2"], "standardized": [True, True, True]},
                               geometry=[pt, pt, pt], crs="EPSG:4326")
    empty = gpd.GeoDataFrame({"id": [], "surface": []}, geometry=[], crs="EPSG:4326")
    g = assess(v, {"clinics": clinics, "roads": empty}, prof)
    clinic = g[g["indicator"] == "clinic"].set_index("village_code")
    assert clinic.loc["a", "evidence_id"] == "c3"  # position 0: the lowest index
    assert clinic.loc["a", "status"] == "met"
    road = g[g["indicator"] == "road"]
    assert (road["status"] == "missing").all() and road["distance_m"].isna().all()
    assert set(road["reason"]) == {"no_qualifying_feature"}
    assert np.isfinite(clinic["distance_m"]).all()
