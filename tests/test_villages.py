"""Natural villages and their administrative parent: given, else the polygon containing them,
else the nearest administrative village."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from refcalc import GEOD
from synth_world import ADMIN, CODE_V1, CODE_V2, CODE_V3, ORIGIN, geom, pt, square

from buque.geo.run import run_project


def villages_of(run_out) -> pd.DataFrame:
    return gpd.read_parquet(run_out / "villages.parquet").set_index("code")


def test_synthetic_parents(synth_cli_run):
    v = villages_of(synth_cli_run.out)
    nat = v[v["level"] == "natural"]
    assert nat["village_code"].to_dict() == {"N1": CODE_V1, "N2": CODE_V2, "N3": CODE_V1,
                                             "N4": CODE_V3, "N5": CODE_V2}
    assert nat["village_code_source"].to_dict() == {"N1": "given", "N2": "contains",
                                                    "N3": "nearest", "N4": "nearest",
                                                    "N5": "nearest"}
    # county and township come from the parent
    town = {a[0]: a[2] for a in ADMIN}
    for code, row in nat.iterrows():
        assert row["township"] == town[row["village_code"]], code
        assert row["county"] == "汉滨区"
    # administrative villages have no parent
    assert v.loc[v["level"] == "admin", "village_code"].isna().all()


def test_synthetic_nearest_parents_agree_with_geodesic(synth, synth_cli_run):
    """Where the parent is 'nearest', no other administrative village is nearer (geodesic),
    whether measured to its reference point or to its polygon."""
    v = villages_of(synth_cli_run.out)
    admin = v[v["level"] == "admin"]
    src = synth.admin.set_index("code")
    for code, row in v[v["village_code_source"] == "nearest"].iterrows():
        p = row.geometry
        n = len(admin)
        _, _, d_ref = GEOD.inv(np.full(n, p.x), np.full(n, p.y), admin["ref_lon"].to_numpy(),
                               admin["ref_lat"].to_numpy())
        assert admin.index[int(np.argmin(d_ref))] == row["village_code"], code
        d_poly = gpd.GeoSeries(src.geometry, crs=4326).to_crs(32649).distance(
            gpd.GeoSeries([p], crs=4326).to_crs(32649).iloc[0])
        assert d_poly.idxmin() == row["village_code"], code
        assert not src.loc[row["village_code"], "geometry"].contains(p)


def test_points_project_parents_are_nearest(synth, synth_points_run):
    v = villages_of(synth_points_run.out)
    admin = v[v["level"] == "admin"]
    nat = v[v["level"] == "natural"]
    for code, row in nat.iterrows():
        if row["village_code_source"] == "given":
            continue
        assert row["village_code_source"] == "nearest"
        p = row.geometry
        _, _, d = GEOD.inv(np.full(len(admin), p.x), np.full(len(admin), p.y),
                           admin.geometry.x.to_numpy(), admin.geometry.y.to_numpy())
        assert row["village_code"] == admin.index[int(np.argmin(d))], code
    # N1 names 张家村, which this project does not have: kept, and warned about
    assert nat.loc["N1", "village_code"] == CODE_V1
    w = pd.read_csv(synth_points_run.out / "warnings.csv", encoding="utf-8-sig", dtype=str)
    assert ((w["code"] == "N1") & (w["field"] == "village_code")).sum() == 1


@pytest.fixture
def containment_case(tmp_path):
    """A large village A and a small one B beside it; hamlet h1 inside A but much nearer B's
    centre; hamlet h2 outside both, nearer B by centre and by edge; h3 with a given parent (B)."""
    a = geom(ORIGIN, square(0, 0, 3000))
    b = geom(ORIGIN, square(4000, 0, 200))
    admin = gpd.GeoDataFrame({"code": ["A", "B"], "name": ["大村", "小村"],
                              "township": ["甲镇", "乙镇"]}, geometry=[a, b], crs="EPSG:4326")
    pyogrio.write_dataframe(admin, tmp_path / "admin.gpkg")
    nat = gpd.GeoDataFrame({
        "code": ["h1", "h2", "h3"], "name": ["一组", "二组", "三组"],
        "village_code": [None, None, "B"],
    }, geometry=[geom(ORIGIN, pt(2900, 0)), geom(ORIGIN, pt(4000, 1000)),
                 geom(ORIGIN, pt(-2000, 0))], crs="EPSG:4326")
    pyogrio.write_dataframe(nat, tmp_path / "hamlets.geojson", driver="GeoJSON")
    (tmp_path / "p.toml").write_text(
        '[layers.villages]\npath = "admin.gpkg"\n[layers.natural_villages]\n'
        'path = "hamlets.geojson"\n', encoding="utf-8")
    return tmp_path


def test_containing_polygon_wins_over_a_nearer_centre(containment_case):
    d = containment_case
    run_project(d / "p.toml", d / "out")
    v = villages_of(d / "out")
    # h1: 2.9 km from A's centre, 1.1 km from B's, but inside A
    assert (v.loc["h1", "village_code"], v.loc["h1", "village_code_source"]) == ("A", "contains")
    # h2: outside both; B's centre 1 km and edge 800 m, A's centre 4.1 km and edge 1 km
    assert (v.loc["h2", "village_code"], v.loc["h2", "village_code_source"]) == ("B", "nearest")
    # h3: a given parent is kept even though it lies inside A
    assert (v.loc["h3", "village_code"], v.loc["h3", "village_code_source"]) == ("B", "given")
    assert v.loc["h1", "township"] == "甲镇" and v.loc["h3", "township"] == "乙镇"


def test_natural_villages_alone_have_no_parent(tmp_path):
    nat = gpd.GeoDataFrame({"code": ["h1", "h2"], "households": [40, 10]},
                           geometry=[geom(ORIGIN, pt(0, 0)), geom(ORIGIN, pt(500, 0))],
                           crs="EPSG:4326")
    pyogrio.write_dataframe(nat, tmp_path / "h.geojson", driver="GeoJSON")
    (tmp_path / "p.toml").write_text('[layers.natural_villages]\npath = "h.geojson"\n',
                                     encoding="utf-8")
    r = run_project(tmp_path / "p.toml", tmp_path / "out")
    v = villages_of(tmp_path / "out")
    assert v["village_code"].isna().all() and len(v) == 2
    g = r.tables.gaps
    # h2 has 10 households: no road indicator; both get water and power
    assert set(zip(g["village_code"], g["indicator"], strict=True)) == {
        ("h1", "road"), ("h1", "water"), ("h1", "power"), ("h2", "water"), ("h2", "power")}
    assert (g["status"] == "unknown").all()          # no feature layers at all
    assert set(g["reason"]) == {"layer_not_provided"}


def test_natural_villages_inherit_poor_status_and_exit_year(synth_cli_run):
    """The hamlets of a poor village planned to exit share its priority (1), not 3."""
    from buque.geo.archive import read_run

    t = read_run(synth_cli_run.out)
    v = t.villages.set_index("code")
    nat = v[v["level"] == "natural"]
    parent = v.loc[nat["village_code"]]
    assert nat["poor"].astype(bool).tolist() == parent["poor"].astype(bool).tolist()
    assert nat.loc["N1", "exit_year"] == 2019 and nat.loc["N3", "exit_year"] == 2019
    assert nat.loc[["N2", "N5"], "exit_year"].isna().all()       # 李家村: poor, no exit year
    prio = t.projects.groupby("village_code")["priority"].first()
    want = {"N1": 1, "N3": 1, "N2": 2, "N5": 2, "N4": 3}
    for code, p in want.items():
        if code in prio:
            assert prio[code] == p, (code, prio[code])
    assert {"N1", "N2", "N3"} & set(prio.index)   # some hamlets do have gaps


def test_a_natural_village_keeps_its_own_status(tmp_path, copy_synth):
    import json

    d = copy_synth()
    gj = json.loads((d / "natural.geojson").read_text("utf-8"))
    for f in gj["features"]:
        if f["properties"]["code"] == "N1":
            f["properties"]["poor"] = False
    (d / "natural.geojson").write_text(json.dumps(gj, ensure_ascii=False), encoding="utf-8")
    from buque.geo.archive import read_run

    run_project(d / "project.toml", tmp_path / "out")
    v = read_run(tmp_path / "out").villages.set_index("code")
    assert not bool(v.loc["N1", "poor"]) and bool(v.loc["N3", "poor"])
