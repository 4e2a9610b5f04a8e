"""Which evidence condition a nearby feature fails (gaps.parquet ``failed``), against text
written by hand for hand-made roads, water points and clinics."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from buque.geo.evidence import explain
from buque.geo.gaps import assess
from buque.layers.profile import load_profile

# village i sits at (100 + i / 10, 30); its road runs 100 m north of it (within 500 m)
ROADS = [  # (id, surface, width_m, expected status, expected failed)
    ("r-narrow", "concrete", 3.0, "missing", "width_m 3.0 < 3.5"),
    ("r-gravel", "gravel", 5.0, "missing",
     "surface 'gravel' not in [asphalt, concrete, concrete:plates, …]"),
    ("r-nosurf", None, 5.0, "unknown", "surface unknown"),
    ("r-nowidth", "asphalt", None, "met", None),  # an unrecorded width passes (if_null = pass)
    ("r-both", "dirt", 2.0, "missing",  # the first failing condition is named
     "surface 'dirt' not in [asphalt, concrete, concrete:plates, …]"),
    ("r-ok", "asphalt", 6.0, "met", None),
]


@pytest.fixture(scope="module")
def profile():
    return load_profile("national")


def _villages(n: int) -> gpd.GeoDataFrame:
    lon = 100 + np.arange(n) / 10
    return gpd.GeoDataFrame({"code": [f"V{i}" for i in range(n)], "level": "admin",
                             "ref_lon": lon, "ref_lat": np.full(n, 30.0)},
                            geometry=shapely.points(lon, 30.0), crs="EPSG:4326")


def test_failed_names_the_condition_of_the_candidate_road(profile):
    v = _villages(len(ROADS))
    lon = v["ref_lon"].to_numpy()
    dlat = 100 / 111_000
    roads = gpd.GeoDataFrame(
        {"id": [r[0] for r in ROADS], "surface": pd.array([r[1] for r in ROADS], dtype="string"),
         "width_m": pd.array([r[2] for r in ROADS], dtype="Float64")},
        geometry=[shapely.LineString([(x - 0.001, 30 + dlat), (x + 0.001, 30 + dlat)])
                  for x in lon], crs="EPSG:4326")
    g = assess(v, {"roads": roads}, profile).set_index("village_code")
    g = g[g["indicator"] == "road"]
    for i, (rid, _, _, status, failed) in enumerate(ROADS):
        row = g.loc[f"V{i}"]
        assert row["status"] == status, rid
        if failed is None:
            assert pd.isna(row["failed"]), rid
        else:
            assert row["candidate_id"] == rid
            assert row["failed"] == failed, rid
    # no layer: nothing failed, the column is there and null
    g2 = assess(v, {}, profile)
    assert "failed" in g2.columns and g2["failed"].isna().all()


def test_explain_nested_and_boolean_conditions(profile):
    water = pd.DataFrame({"safe": pd.array([True, False, None, None, None], dtype="boolean"),
                          "kind": ["x", "tap", "river", None, "well"]})
    assert explain(water, profile.indicators["water"].evidence).tolist() == [
        pd.NA, "safe 'false' != true", "kind 'river' not in [tap, water_tap, well, …]",
        "kind unknown", pd.NA]
    clinics = pd.DataFrame({"standardized": pd.array([True, False, None], dtype="boolean")},
                           index=[7, 3, 5])
    got = explain(clinics, profile.indicators["clinic"].evidence)
    assert list(got.index) == [7, 3, 5]
    assert got.tolist() == [pd.NA, "standardized 'false' != true", "standardized unknown"]
