"""Exit checks (issue 12, part 4): exit.csv against an independent computation.

The synthetic county of bench.synth with a household register made here (incidence per village
varied on purpose, some villages without households, some households without members) is run
with ``year`` set and the shaanxi profile. Readiness, the incidence, each criterion's status and
the county shares are recomputed here from the generated register rows and the run's
gaps.parquet (the engine's per-village statuses, which the exit check takes as given), without
geo.exit.
"""

from __future__ import annotations

import csv
import io
import shutil
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from bench.synth import generate
from buque.api.app import create_app
from buque.api.settings import Settings
from buque.geo.archive import read_run
from buque.geo.run import run_project

INDICATORS = ["road", "water", "power", "power3", "clinic"]  # shaanxi [exit.village]
LABEL = {"road": "通硬化路", "water": "饮水安全", "power": "通生产生活用电",
         "power3": "通动力电", "clinic": "标准化村卫生室"}


def _complete(d, v, chosen, unknown_clinic: str, unknown_water: str) -> None:
    """Give the ``chosen`` administrative villages and their natural villages every exit
    facility: a paved road and a standardized clinic at the village, a safe tap and a
    transformer at each (appended to the layers, so the run's statuses become met), except
    that the clinic of ``unknown_clinic`` and the tap of the natural village
    ``unknown_water`` have their deciding attributes unrecorded (so those become unknown)."""
    kids = v[(v["level"] == "natural") & v["village_code"].isin(chosen)]
    adm = v[v["code"].isin(chosen)]
    here = pd.concat([adm, kids])
    pts = gpd.points_from_xy(here["ref_lon"], here["ref_lat"], crs="EPSG:4326")
    apts = gpd.points_from_xy(adm["ref_lon"], adm["ref_lat"], crs="EPSG:4326")
    n, m = len(here), len(adm)
    safe = pd.array(np.where(here["code"] == unknown_water, None, True), dtype="boolean")
    kind = np.where(here["code"] == unknown_water, None, "tap")
    std = pd.array(np.where(adm["code"] == unknown_clinic, None, True), dtype="boolean")
    add = {
        "water": gpd.GeoDataFrame({"id": [f"WX{i}" for i in range(n)], "kind": kind,
                                   "safe": safe}, geometry=pts),
        "power": gpd.GeoDataFrame({"id": [f"PX{i}" for i in range(n)], "kind": "transformer",
                                   "voltage": 10000}, geometry=pts),
        "clinics": gpd.GeoDataFrame({"id": [f"CX{i}" for i in range(m)], "level": "村",
                                     "standardized": std}, geometry=apts),
        "roads": gpd.GeoDataFrame({"id": [f"RX{i}" for i in range(m)], "surface": "asphalt",
                                   "width_m": 4.5, "highway": "unclassified"},
                                  geometry=shapely.linestrings(np.stack(
                                      [np.c_[adm["ref_lon"], adm["ref_lat"]],
                                       np.c_[adm["ref_lon"] + 0.001, adm["ref_lat"]]], axis=1)),
                                  crs="EPSG:4326"),
    }
    for kind, gdf in add.items():
        old = gpd.read_file(d / f"{kind}.gpkg")
        both = gpd.GeoDataFrame(pd.concat([old, gdf.to_crs(old.crs)], ignore_index=True),
                                crs=old.crs)
        (d / f"{kind}.gpkg").unlink()
        both.to_file(d / f"{kind}.gpkg")


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    d = tmp_path_factory.mktemp("exit")
    generate(d, admin=300, natural=1800, roads=3000, seed=9, verbose=False)
    admin = pyogrio.read_dataframe(d / "villages.gpkg", read_geometry=False)
    year = int(admin["exit_year"].dropna().astype(int).mode().iloc[0])
    run_project(d / "project.toml", d / "first")  # reference points and parents, to place by
    v0 = read_run(d / "first").villages
    due = admin.loc[(admin["poor"] == 1) & (admin["exit_year"] == year), "code"].to_numpy()
    chosen = set(due[::2])
    g0 = pd.read_parquet(d / "first" / "gaps.parquet")
    dry = g0[(g0["indicator"] == "water") & (g0["status"] == "missing")]["village_code"]
    dry = v0[(v0["level"] == "natural") & v0["code"].isin(dry) & v0["village_code"].isin(chosen)]
    # ... and no other village that gets a tap within 1.5 km
    taps = v0[v0["code"].isin(chosen) | v0["village_code"].isin(chosen)]
    km = np.hypot((dry["ref_lon"].to_numpy()[:, None] - taps["ref_lon"].to_numpy()) * 94,
                  (dry["ref_lat"].to_numpy()[:, None] - taps["ref_lat"].to_numpy()) * 111)
    dry = dry[np.sort(km, axis=1)[:, 1] > 1.5]
    unknown_water, water_parent = dry["code"].iloc[0], dry["village_code"].iloc[0]
    unknown_clinic = sorted(chosen - {water_parent})[0]
    _complete(d, v0, chosen, unknown_clinic, unknown_water)
    nat = v0.loc[v0["level"] == "natural", ["code", "village_code"]]
    rng = np.random.default_rng(3)
    codes, target = admin["code"].to_numpy(), rng.choice([0.0, 0.01, 0.02, 0.06], len(admin))
    rows = []
    for i, (code, p) in enumerate(zip(codes, target, strict=True)):
        if i % 11 == 5 and code not in chosen:
            continue  # no household of this village in the register
        kids = nat.loc[nat["village_code"] == code, "code"].tolist()
        n = int(rng.integers(25, 60))
        where = rng.choice(np.array([code, *kids], dtype=object), n)
        members = rng.integers(1, 7, n).astype(str).astype(object)
        if i % 13 == 7 and code not in chosen:
            members[0] = ""  # the members of one household not recorded
        poor = rng.random(n) < 0.3
        # poor households not exited by the year: about share p of the members
        late = poor & (rng.random(n) < (0.0 if code in chosen else p) / 0.3)
        ey = np.where(poor, np.where(late, year + 1, year - 1), 0).astype(object)
        ey[~poor] = ""
        grade = rng.choice(np.array(["A", "B", "C"], dtype=object), n, p=[0.6, 0.38, 0.02])
        rows.append(pd.DataFrame({"户编号": [f"{code}-{k}" for k in range(n)],
                                  "村代码": where, "家庭人口": members,
                                  "是否贫困户": np.where(poor, "是", "否"), "脱贫年度": ey,
                                  "住房安全等级": grade, "是否已改造": "否"}))
    raw = pd.concat(rows, ignore_index=True)
    (d / "户.csv").write_bytes(raw.to_csv(index=False).encode("gbk"))
    toml = (d / "project.toml").read_text("utf-8").replace('standard = "national"',
                                                           f'standard = "shaanxi"\nyear = {year}')
    (d / "project.toml").write_text(toml + '\n[registers.households]\npath = "户.csv"\n'
                                    'encoding = "GBK"\n', "utf-8")
    run_project(d / "project.toml", d / "run")
    # natural villages' parents as the run linked them (spatially where the layer has none)
    v = read_run(d / "run").villages
    nat = v.loc[v["level"] == "natural", ["code", "village_code"]]
    return {"d": d, "admin": admin, "nat": nat, "raw": raw, "year": year, "out": d / "run",
            "unknown_water": unknown_water, "unknown_clinic": unknown_clinic,
            "parent_of_unknown_water": water_parent}


def _expected_villages(c) -> pd.DataFrame:
    admin, nat, raw, year = c["admin"], c["nat"], c["raw"], c["year"]
    parent = dict(zip(nat["code"], nat["village_code"], strict=True))
    adm = raw["村代码"].map(lambda x: parent.get(x, x))
    m = pd.to_numeric(raw["家庭人口"], errors="coerce")
    poor_left = (raw["是否贫困户"] == "是") & (pd.to_numeric(raw["脱贫年度"], errors="coerce")
                                            > year)
    per = pd.DataFrame({"adm": adm, "m": m.fillna(0), "late": np.where(poor_left, m.fillna(0), 0),
                        "unrec": m.isna()}).groupby("adm").sum()
    due = admin[(admin["poor"] == 1) & (admin["exit_year"] == year)]
    per = per.reindex(due["code"])
    inc = per["late"] / per["m"]
    inc_ok = per["m"].notna() & (per["unrec"] == 0) & (inc < 0.03)
    g = pd.read_parquet(c["out"] / "gaps.parquet")
    g["adm"] = np.where(g["level"] == "natural", g["village_code"].map(parent), g["village_code"])
    g = g[(g["level"] == "admin") | (g["indicator"] != "road")]
    exp = pd.DataFrame({"incidence": inc, "inc_known": per["m"].notna() & (per["unrec"] == 0),
                        "inc_ok": inc_ok}, index=due["code"])
    for k in INDICATORS:
        gk = g[g["indicator"] == k]
        n = pd.crosstab(gk["adm"], gk["status"]).reindex(due["code"])
        n = n.reindex(columns=["met", "missing", "unknown"]).fillna(0)
        exp[k] = np.where(n["missing"] > 0, "missing",
                          np.where((n["unknown"] > 0) | (n.sum(axis=1) == 0), "unknown", "met"))
    exp["ready"] = exp["inc_ok"] & (exp[INDICATORS] == "met").all(axis=1)
    return exp


def test_exit_csv_columns_as_the_contract_says(county):
    text = (county["out"] / "exit.csv").read_text("utf-8-sig")
    head = next(csv.reader(io.StringIO(text)))
    assert head[:4] == ["scope", "village_code", "county", "ready"] and head[-1] == "blockers"
    assert head[4:-1] == ["incidence", *INDICATORS, "road_share", "water_share", "power_share",
                          "housing_safe_share"]
    assert ",true," in text and ",false," in text


def test_villages_ready_or_blocked_as_computed_independently(county):
    e = read_run(county["out"]).exit
    exp = _expected_villages(county)
    v = e[e["scope"] == "village"].set_index("village_code")
    assert sorted(v.index) == sorted(exp.index) and len(v) >= 20
    v = v.loc[exp.index]
    assert (v["ready"].to_numpy() == exp["ready"].to_numpy()).all()
    for k in INDICATORS:
        assert (v[k].to_numpy() == exp[k].to_numpy()).all(), k
    known = exp["inc_known"].to_numpy()
    assert np.allclose(v["incidence"].to_numpy()[known], exp["incidence"].to_numpy()[known])
    assert v["incidence"][~known].isna().all()
    # every blocker named, and only blockers
    for code, r in exp.iterrows():
        b = v.loc[code, "blockers"]
        assert ("贫困发生率" in b) == (not r["inc_ok"]), (code, b)
        if not r["inc_known"]:
            assert "贫困发生率: 待核实" in b
        for k in INDICATORS:
            assert (LABEL[k] in b) == (r[k] != "met"), (code, k, b)
            if r[k] == "unknown":
                assert f"{LABEL[k]}: 待核实" in b
        assert (b == "") == r["ready"]
    # the cases the issue names all occur here
    assert exp["ready"].any() and (~exp["ready"]).any()
    assert (~exp["inc_known"]).any() and (exp["inc_known"] & ~exp["inc_ok"]).any()
    assert (exp[INDICATORS] == "unknown").any().any()


def test_natural_village_unknown_blocks_and_is_named(county):
    """A natural village's unknown status blocks its administrative village and is named;
    so does the village's own unknown clinic (everything else of both villages is met)."""
    e0 = read_run(county["out"]).exit.set_index("village_code")
    adm, nv = county["parent_of_unknown_water"], county["unknown_water"]
    assert not e0.loc[adm, "ready"] and e0.loc[adm, "water"] == "unknown"
    assert f"饮水安全: 待核实 (自然村 {nv})" in e0.loc[adm, "blockers"]
    own = e0.loc[county["unknown_clinic"]]
    assert not own["ready"] and own["blockers"] == "标准化村卫生室: 待核实 (本村)"
    e = read_run(county["out"]).exit.set_index("village_code")
    g = pd.read_parquet(county["out"] / "gaps.parquet")
    nat = county["nat"]
    parent = dict(zip(nat["code"], nat["village_code"], strict=True))
    un = g[(g["level"] == "natural") & (g["status"] != "met") & (g["indicator"] == "water")]
    hit = [(parent[c], c) for c in un["village_code"] if parent.get(c) in e.index]
    assert hit
    for adm, nv in hit:
        assert not e.loc[adm, "ready"]
        listed = e.loc[adm, "blockers"]
        assert "饮水安全" in listed
        n_bad = sum(1 for a, _ in hit if a == adm)
        if n_bad <= 5:
            assert nv in listed, (adm, nv, listed)


def test_county_rows(county):
    e = read_run(county["out"]).exit
    c = e[e["scope"] == "county"].set_index("county")
    admin, nat, raw = county["admin"], county["nat"], county["raw"]
    assert sorted(c.index) == sorted(admin["county"].unique())
    assert c["village_code"].isna().all()
    g = pd.read_parquet(county["out"] / "gaps.parquet")
    cty = dict(zip(admin["code"], admin["county"], strict=True))
    cty |= {k: cty[v] for k, v in zip(nat["code"], nat["village_code"], strict=True)}
    g["county"] = g["village_code"].map(cty)
    road = g[(g["indicator"] == "road") & (g["level"] == "admin")]
    share = (road["status"] == "met").groupby(road["county"]).mean()
    assert np.allclose(c.loc[share.index, "road_share"], share)
    power = g[g["indicator"] == "power"]
    p_share = (power["status"] == "met").groupby(power["county"]).mean()
    assert np.allclose(c.loc[p_share.index, "power_share"], p_share)
    hh_c = raw["村代码"].map(cty)
    safe = raw["住房安全等级"].isin(["A", "B"]).groupby(hh_c).mean()
    assert np.allclose(c.loc[safe.index, "housing_safe_share"], safe)
    # one household without members: every county incidence with one is unknown (待核实)
    unrec = raw["家庭人口"].eq("").groupby(hh_c).sum()
    for name, row in c.iterrows():
        assert not row["ready"] or unrec.get(name, 0) == 0
        if unrec.get(name, 0):
            assert np.isnan(row["incidence"]) and "贫困发生率: 待核实" in row["blockers"]
        if p_share.get(name, 0) < 1:
            assert "户户通生活用电" in row["blockers"] and not row["ready"]


def test_runs_without_year_have_no_exit_csv_and_old_runs_load(county, tmp_path):
    d = county["d"]
    toml = (d / "project.toml").read_text("utf-8")
    y = f"year = {county['year']}\n"
    (d / "noyear.toml").write_text(toml.replace(y, ""), "utf-8")
    run_project(d / "noyear.toml", tmp_path / "r")
    assert not (tmp_path / "r" / "exit.csv").exists()
    assert read_run(tmp_path / "r").exit is None
    old = tmp_path / "old"
    shutil.copytree(county["out"], old)
    (old / "exit.csv").unlink()
    assert read_run(old).exit is None


def test_exit_endpoint_filters_and_formats(county, tmp_path):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2.*")  # as tests/api/conftest.py
        from fastapi.testclient import TestClient
    e = read_run(county["out"]).exit
    name = e.loc[e["scope"] == "county", "county"].iloc[0]
    with TestClient(create_app(Settings(data=county["out"]))) as c:
        r = c.get("/exit", params={"county": name, "scope": "village"})
        assert r.status_code == 200, r.text
        body = r.json()
        want = e[(e["scope"] == "village") & (e["county"] == name)]
        assert body["numberReturned"] == len(want) > 0 and body["year"] == county["year"]
        assert sorted(x["village_code"] for x in body["rows"]) == sorted(want["village_code"])
        assert body["ready"] == int(want["ready"].sum()) and body["checked"] is True
        r = c.get("/exit", params={"ready": "false", "f": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        got = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig", dtype={"village_code": str})
        assert len(got) == int((~e["ready"]).sum()) and not got["ready"].any()
        assert c.get("/exit", params={"scope": "town"}).status_code == 400
    old = tmp_path / "old"
    shutil.copytree(county["out"], old)
    (old / "exit.csv").unlink()
    with TestClient(create_app(Settings(data=old))) as c:
        r = c.get("/exit")
        assert r.status_code == 200 and r.json()["checked"] is False
        assert r.json()["rows"] == [] and "no exit checks" in r.json()["note"]
        assert c.get("/exit", params={"f": "csv"}).status_code == 200
