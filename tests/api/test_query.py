"""geo.query on small hand-made tables (poverty fields, places, boxes the demo lacks)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from buque.geo.lists import split_values
from buque.geo.query import (
    QueryError,
    VillageFilter,
    VillageIndex,
    parse_bbox,
    project_totals,
    summary_total,
)

KEYS = ["road", "water"]


@pytest.fixture(scope="module")
def index() -> VillageIndex:
    v = gpd.GeoDataFrame({
        "code": ["A1", "A2", "A3", "N1", "N2"],
        "name": ["张家村", "李家村", "Zhang Gou", "张家湾", "石板岩"],
        "county": ["甲县", "甲县", "乙县", "甲县", None],
        "township": ["一镇", "二镇", "三镇", "一镇", None],
        "population": [100, 200, None, 30, 40],
        "households": [30, 60, None, 9, 12],
        "poor": [1.0, 0.0, 1.0, np.nan, np.nan],
        "exit_year": [2019.0, np.nan, 2020.0, np.nan, np.nan],
        "level": ["admin", "admin", "admin", "natural", "natural"],
        "village_code": [None, None, None, "A1", None],
        "road": ["met", "missing", "unknown", "missing", None],
        "road_distance_m": [10.0, 900.0, np.nan, 700.0, np.nan],
        "water": [None, None, None, "missing", "met"],
        "water_distance_m": [np.nan, np.nan, np.nan, 1200.0, 10.0],
        "missing": ["", "road", "", "road,water", ""],
    }, geometry=[shapely.box(100, 30, 101, 31), shapely.Point(102, 30.5),
                 shapely.Point(179.5, 0), shapely.Point(100.5, 30.5), shapely.Point(-179.5, 0)],
        crs="EPSG:4326")
    return VillageIndex(v)


def sel(index, **kw) -> list[str]:
    f = VillageFilter.parse(indicators=index.indicators, **kw)
    return list(index.properties["code"].iloc[index.select(f)])


def test_indicators_and_properties(index):
    assert index.indicators == KEYS
    p = index.properties
    assert p["poor"].tolist()[:3] == [True, False, True] and p["poor"].isna().sum() == 2
    assert str(p["exit_year"].dtype) == "Int64" and p["n_missing"].tolist() == [0, 1, 0, 2, 0]


@pytest.mark.parametrize("kw,want", [
    ({}, ["A1", "A2", "A3", "N1", "N2"]),
    ({"missing": "road"}, ["A2", "N1"]),
    ({"missing": "water"}, ["N1"]),
    ({"missing": "any"}, ["A2", "N1"]),
    ({"met": "road,water"}, ["A1", "N2"]),
    ({"poor": "true"}, ["A1", "A3"]),
    ({"poor": False}, ["A2"]),
    ({"exit_year": "2019,2020"}, ["A1", "A3"]),
    ({"exit_year": 2020}, ["A3"]),
    ({"county": "甲县"}, ["A1", "A2", "N1"]),
    ({"county": "甲县,乙县", "level": "admin"}, ["A1", "A2", "A3"]),
    ({"township": "一镇", "missing": "road"}, ["N1"]),
    ({"indicator": "road", "status": "unknown"}, ["A3"]),
    ({"indicator": "water"}, ["N1", "N2"]),
    ({"status": "met"}, ["A1", "N2"]),
    ({"q": "张家"}, ["A1", "N1"]),
    ({"q": "zhang"}, ["A3"]),
    ({"q": "n1"}, ["N1"]),
    ({"code": "A2,N2,ZZ"}, ["A2", "N2"]),
    ({"bbox": "99,29,101.5,31"}, ["A1", "N1"]),
    ({"bbox": "179,-1,-179,1"}, ["A3", "N2"]),       # across the antimeridian
    ({"bbox": "-200,-100,200,100"}, ["A1", "A2", "A3", "N1", "N2"]),  # clipped to the world
])
def test_select(index, kw, want):
    assert sel(index, **kw) == want


@pytest.mark.parametrize("kw,param", [
    ({"missing": "sewer"}, "missing"), ({"level": "city"}, "level"), ({"poor": "perhaps"}, "poor"),
    ({"exit_year": "next"}, "exit_year"), ({"exit_year": "1066"}, "exit_year"),
    ({"status": ""}, "status"), ({"bbox": "1,2,3,4,5"}, "bbox"), ({"bbox": "0,10,1,5"}, "bbox"),
    ({"bbox": "0,0,nan,1"}, "bbox"), ({"q": "x" * 500}, "q"),
    ({"indicator": ",".join(["road"] * 101)}, "indicator"),
])
def test_parse_errors_name_the_parameter(index, kw, param):
    with pytest.raises(QueryError) as e:
        VillageFilter.parse(indicators=index.indicators, **kw)
    assert e.value.param == param


def test_helpers():
    assert split_values(" a, b,,a ") == ("a", "b")
    assert split_values(None) == ()
    assert parse_bbox("170,0,-170,1") == ((170.0, 0.0, 180.0, 1.0), (-180.0, 0.0, -170.0, 1.0))
    assert index_position_none()


def index_position_none() -> bool:
    v = gpd.GeoDataFrame({"code": ["X"], "missing": [""]}, geometry=[shapely.Point(0, 0)],
                         crs="EPSG:4326")
    i = VillageIndex(v)
    return i.position("X") == 0 and i.position("Y") is None


def test_summary_total_recomputes_shortfall():
    rows = pd.DataFrame({"county": ["a", "b"], "indicator": ["road", "road"],
                         "assessed": [10, 10], "met": [9, 10], "missing": [1, 0],
                         "unknown": [0, 0], "rate": [0.9, 1.0], "target": [0.98, 0.98],
                         "shortfall": [1, 0], "meets_target": [False, True],
                         "deadline": ["2026-10-31"] * 2})
    t = summary_total(rows).iloc[0]
    # 98% of 20 is 19.6 -> 20 villages needed, 19 met: 1 short (not the sum of per-county 1 + 0)
    assert (t["assessed"], t["met"], t["shortfall"]) == (20, 19, 1)
    assert t["rate"] == 0.95


def test_project_totals_empty():
    p = pd.DataFrame({c: [] for c in ("village_code", "county", "indicator", "action", "unit",
                                      "quantity", "cost")})
    t = project_totals(p)
    assert t["total"].iloc[0]["rows"] == 0 and t["by_indicator"].empty


def test_project_index_agrees_with_pandas(tables):
    from buque.geo.query import ProjectFilter, ProjectIndex

    ix = ProjectIndex(tables.projects)
    p = ix.table
    t = ix.totals(np.arange(ix.n))
    want = (p.groupby(["county", "indicator", "unit"], dropna=False)
            .agg(rows=("village_code", "size"), villages=("village_code", "nunique"),
                 quantity=("quantity", "sum"), cost=("cost", "sum")).reset_index())
    got = t["by_county"].merge(want, on=["county", "indicator", "unit"], suffixes=("", "_pd"))
    assert len(got) == len(want) == len(t["by_county"])
    assert (got["rows"] == got["rows_pd"]).all() and (got["villages"] == got["villages_pd"]).all()
    np.testing.assert_allclose(got["cost"], got["cost_pd"], atol=0.01)
    np.testing.assert_allclose(got["quantity"], got["quantity_pd"], atol=0.001)
    assert t["total"]["villages"].iloc[0] == p["village_code"].nunique()
    f = ProjectFilter.parse(indicators=["road", "water", "power", "clinic", "broadband"],
                            indicator="water,power", priority="3")
    sel = ix.select(f)
    assert list(p["rank"].iloc[sel]) == list(
        p.loc[p["indicator"].isin(["water", "power"]) & (p["priority"] == 3), "rank"])
    by_ind = ix.totals(sel)["by_indicator"]
    assert set(by_ind["indicator"]) <= {"water", "power"}
    assert by_ind["rows"].sum() == len(sel)
