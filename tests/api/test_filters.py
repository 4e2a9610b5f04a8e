"""Village filters: every result is checked against the run's own tables (gaps.parquet and
villages.parquet read back with geo.archive), not against the API's code."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import shapely

KEYS = ("road", "water", "power", "clinic", "broadband")


def codes(client, query: str) -> set[str]:
    """All codes matched by a query (numberMatched checked against the rows returned)."""
    fc = client.get(f"/collections/villages/items?limit=1000&{query}").json()
    assert fc["numberMatched"] == fc["numberReturned"], fc.get("detail")
    return {f["id"] for f in fc["features"]}


def status_codes(tables, indicators, statuses) -> set[str]:
    g = tables.gaps
    m = g["indicator"].isin(list(indicators)) & g["status"].isin(list(statuses))
    return set(g.loc[m, "village_code"].astype(str))


@pytest.mark.parametrize("combo", [c for n in (1, 2, 5) for c in itertools.combinations(KEYS, n)])
def test_missing_is_exactly_what_the_run_marks_missing(client, tables, combo):
    expected = status_codes(tables, combo, ["missing"])
    got = codes(client, "missing=" + ",".join(combo))
    assert got == expected
    # and the served 'missing' property names one of them for each village
    fc = client.get("/collections/villages/items?limit=1000&missing=" + ",".join(combo)).json()
    for f in fc["features"]:
        assert set(f["properties"]["missing"].split(",")) & set(combo)


def test_missing_any(client, tables):
    assert codes(client, "missing=any") == status_codes(tables, KEYS, ["missing"])


def test_met(client, tables):
    assert codes(client, "met=road,water") == status_codes(tables, ["road", "water"], ["met"])


@pytest.mark.parametrize("ind,status", [("clinic", "unknown"), ("road", "unknown"),
                                        ("power", "met"), ("broadband", "missing,unknown")])
def test_indicator_status(client, tables, ind, status):
    assert codes(client, f"indicator={ind}&status={status}") == status_codes(
        tables, [ind], status.split(","))


def test_indicator_alone_is_assessed(client, tables):
    assert codes(client, "indicator=water") == set(
        tables.gaps.loc[tables.gaps["indicator"] == "water", "village_code"].astype(str))


def test_status_alone_is_any_indicator(client, tables):
    assert codes(client, "status=unknown") == status_codes(tables, KEYS, ["unknown"])


def test_place_and_level_filters(client, tables):
    v = tables.villages
    town = v["township"].dropna().value_counts().index[0]
    assert codes(client, f"township={town}") == set(v.loc[v["township"] == town, "code"])
    county = v["county"].dropna().iloc[0]
    assert codes(client, f"county={county}") == set(v.loc[v["county"] == county, "code"])
    assert codes(client, "county=Nowhere") == set()
    for level in ("admin", "natural"):
        assert codes(client, f"level={level}") == set(v.loc[v["level"] == level, "code"])
    # filters combine with AND
    both = set(v.loc[(v["township"] == town) & (v["level"] == "natural"), "code"])
    got = codes(client, f"township={town}&level=natural&missing=water")
    assert got == both & status_codes(tables, ["water"], ["missing"])


def test_poor_and_exit_year(client, tables):
    v = tables.villages
    poor = v["poor"].astype("object").map({1.0: True, 0.0: False})
    assert codes(client, "poor=true") == set(v.loc[poor.eq(True).fillna(False), "code"])
    assert codes(client, "poor=false") == set(v.loc[poor.eq(False).fillna(False), "code"])
    assert codes(client, "exit_year=2019") == set(v.loc[v["exit_year"] == 2019, "code"])


def test_text_search(client, tables):
    v = tables.villages
    name = str(v["name"].dropna().iloc[0])
    part = name[1:4].upper()
    want = set(v.loc[v["name"].str.contains(part, case=False, regex=False).fillna(False)
                     | v["code"].str.contains(part, case=False, regex=False), "code"])
    assert want and codes(client, f"q={part}") == want
    code = str(v["code"].iloc[5])
    assert code in codes(client, f"q={code[-6:]}")


def test_bbox(client, tables):
    v = tables.villages
    x0, y0, x1, y1 = v.total_bounds
    box = tuple(float(x) for x in (x0, y0, (x0 + x1) / 2, (y0 + y1) / 2))
    want = set(v.loc[v.intersects(shapely.box(*box)), "code"])
    assert 0 < len(want) < len(v)
    assert codes(client, "bbox=" + ",".join(map(repr, box))) == want
    # 6-number form (with heights) and the world
    assert codes(client, "bbox={},{},0,{},{},100".format(*box)) == want
    assert len(codes(client, "bbox=-180,-90,180,90")) == len(v)
    # a box crossing the antimeridian that holds nothing here
    assert codes(client, "bbox=170,-10,-170,10") == set()


def test_code_list(client, tables):
    some = list(map(str, tables.villages["code"].iloc[[0, 7, 9]]))
    assert codes(client, "code=" + ",".join(some)) == set(some)


@pytest.mark.parametrize("query,param", [
    ("missing=roads", "missing"), ("met=foo", "met"), ("level=hamlet", "level"),
    ("status=broken", "status"), ("indicator=road&status=", "status"), ("poor=maybe", "poor"),
    ("exit_year=soon", "exit_year"), ("bbox=1,2,3", "bbox"), ("bbox=1,50,2,40", "bbox"),
    ("bbox=a,b,c,d", "bbox"), ("limit=0", "limit"), ("limit=x", "limit"), ("offset=-1", "offset"),
    ("f=shp", "f"), ("crs=EPSG:3857", "crs"), ("mising=road", None),
])
def test_invalid_parameters_are_400_problems(client, query, param):
    r = client.get(f"/collections/villages/items?{query}")
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    p = r.json()
    assert p["status"] == 400 and p["title"] and p["detail"]
    if param:
        assert param in p["detail"]


def test_limit_is_capped(client, tables):
    fc = client.get("/collections/villages/items?limit=100000").json()
    assert fc["numberReturned"] == min(len(tables.villages), 1000)


def test_selection_agrees_with_numpy(tables):
    """The index used by the API against a plain pandas evaluation of a mixed filter."""
    from buque.geo.query import VillageFilter, VillageIndex

    idx = VillageIndex(tables.villages)
    f = VillageFilter.parse(indicators=idx.indicators, missing="power,water", level="natural")
    got = set(idx.properties["code"].iloc[idx.select(f)])
    v = tables.villages
    m = ((v["power"] == "missing") | (v["water"] == "missing")).fillna(False) & (v["level"] == "natural")
    assert got == set(v.loc[np.asarray(m, bool), "code"])


@pytest.mark.parametrize("sep", ["，", "、", " ， "])
def test_lists_split_alike_in_the_api_and_the_exports(client, tables, sep):
    """One splitter: a full-width comma or an enumeration comma separates items everywhere."""
    from buque.geo.report.filters import Selection

    towns = sorted(tables.villages["township"].dropna().unique())[:2]
    expected = set(tables.villages.loc[tables.villages["township"].isin(towns), "code"])
    assert codes(client, "township=" + sep.join(towns)) == expected
    assert codes(client, "township=" + ",".join(towns)) == expected
    summ = client.get("/summary", params={"by": "township", "township": sep.join(towns)}).json()
    assert {r["township"] for r in summ["rows"]} == set(towns), summ
    assert Selection.parse(None, sep.join(towns), "road、water").townships == tuple(towns)
    assert Selection.parse(None, None, "road、water，power").indicators == ("road", "water",
                                                                          "power")
    r = client.get("/exports/csv", params={"township": sep.join(towns)})
    assert r.status_code == 200
