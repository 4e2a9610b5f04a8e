"""Power as the standard means it (issue 12, part 3): the ``power_supply`` rule.

Hamlets far apart, each with one arrangement of power features at known geodesic offsets; the
expected status of each is decided here from those offsets and the standard's words (a
transformer within 500 m, or a line of ≤ 1 kV within 100 m; an MV line alone does not count;
a line of unknown voltage is unknown; power3 also needs three phases), not from Buque's code.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from pyproj import Geod

from buque.geo.run import run_project

G = Geod(ellps="WGS84")
# hamlet: [(kind, voltage, phases, metres east of the hamlet)], expected power, power3
CASES = {
    "H1": ([("minor_line", "10000", None, 50)], "missing", "missing"),       # 10 kV only
    "H2": ([("minor_line", "10000", None, 50), ("transformer", "10000", None, 300)],
           "met", "met"),
    "H3": ([("minor_line", None, None, 50)], "unknown", "unknown"),           # no voltage
    "H4": ([("minor_line", "400", "3", 60)], "met", "met"),
    "H5": ([("minor_line", "400", None, 60)], "met", "unknown"),              # phases unknown
    "H6": ([("minor_line", "230", "1", 60)], "met", "missing"),              # single-phase
    "H7": ([("transformer", None, None, 700)], "missing", "missing"),         # too far
    "H8": ([("minor_line", "400", "3", 300)], "missing", "missing"),          # LV too far
    "H9": ([("line", "10000;400", None, 80)], "met", "unknown"),             # has an LV circuit
    "H10": ([("transformer", None, "1", 200)], "met", "missing"),            # single-phase trafo
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("power")
    hamlets, feats = [], []
    for i, (code, (fs, _, _)) in enumerate(CASES.items()):
        lon, lat = 108.0 + 0.2 * i, 34.0  # ~18 km apart
        hamlets.append({"code": code, "name": code, "village_code": "A1", "households": 40,
                        "geometry": shapely.Point(lon, lat)})
        for j, (kind, volt, ph, east) in enumerate(fs):
            x, y, _ = G.fwd(lon, lat, 90, east)
            geom = (shapely.LineString([(x, y - 0.01), (x, y + 0.01)]) if "line" in kind
                    else shapely.Point(x, y))
            feats.append({"id": f"{code}-{j}", "kind": kind, "voltage": volt, "phases": ph,
                          "geometry": geom})
    gpd.GeoDataFrame(hamlets, crs="EPSG:4326").to_file(d / "hamlets.geojson")
    gpd.GeoDataFrame([{"code": "A1", "name": "A", "geometry": shapely.Point(107.5, 34.5)}],
                     crs="EPSG:4326").to_file(d / "villages.geojson")
    gpd.GeoDataFrame(feats, crs="EPSG:4326").to_file(d / "power.gpkg")
    (d / "p.toml").write_text('name = "power"\nstandard = "shaanxi"\n'
                              '[layers.villages]\npath = "villages.geojson"\n'
                              '[layers.natural_villages]\npath = "hamlets.geojson"\n'
                              '[layers.power]\npath = "power.gpkg"\n', "utf-8")
    run_project(d / "p.toml", d / "out")
    return d / "out"


def test_power_and_power3_as_the_standard_says(run):
    g = pd.read_parquet(run / "gaps.parquet")
    for key, col in (("power", 1), ("power3", 2)):
        got = g[g["indicator"] == key].set_index("village_code")["status"]
        want = pd.Series({c: v[col] for c, v in CASES.items()})
        assert got.loc[want.index].to_dict() == want.to_dict(), key


def test_mv_line_alone_is_non_qualifying_and_wants_a_transformer(run):
    g = pd.read_parquet(run / "gaps.parquet").set_index(["village_code", "indicator"])
    assert g.loc[("H1", "power"), "reason"] == "non_qualifying_nearby"
    assert g.loc[("H1", "power"), "candidate_id"] == "H1-0"
    assert g.loc[("H3", "power"), "reason"] == "unverified_nearby"
    # distance_m: to the nearest qualifying feature (H2: the transformer 300 m away)
    assert abs(g.loc[("H2", "power"), "distance_m"] - 300) < 1.5
    assert g.loc[("H2", "power"), "evidence_id"] == "H2-1"
    p = pd.read_csv(run / "projects.csv", dtype=str)
    h1 = p[(p["village_code"] == "H1") & (p["indicator"] == "power")]
    assert list(h1["action"]) == ["upgrade"] and "变压器" in h1["item"].iloc[0]
