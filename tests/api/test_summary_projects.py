"""/summary and /projects against the run's summary.csv and projects.csv."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest


def test_summary_by_county(client, tables):
    body = client.get("/summary").json()
    rows = pd.DataFrame(body["rows"])
    want = tables.summary[tables.summary["township"].isna()]
    assert len(rows) == len(want)
    for col in ("assessed", "met", "missing", "unknown", "shortfall"):
        assert rows[col].tolist() == want[col].tolist(), col
    for _, r in rows.iterrows():
        assert r["assessed"] == r["met"] + r["missing"] + r["unknown"]
        assert r["rate"] == pytest.approx(r["met"] / r["assessed"], abs=1e-4)
        assert r["shortfall"] == max(math.ceil(r["target"] * r["assessed"] - 1e-9) - r["met"], 0)
        assert r["deadline"]
    assert "township" not in rows


def test_summary_by_township_and_filters(client, tables):
    rows = pd.DataFrame(client.get("/summary?by=township").json()["rows"])
    want = tables.summary[tables.summary["township"].notna()]
    assert len(rows) == len(want)
    town = want["township"].iloc[0]
    sel = pd.DataFrame(client.get(f"/summary?by=township&township={town}&indicator=water")
                       .json()["rows"])
    assert set(sel["township"]) == {town} and set(sel["indicator"]) == {"water"}


def test_summary_total_matches_gaps(client, tables):
    total = {r["indicator"]: r for r in client.get("/summary?by=township").json()["total"]}
    g = tables.gaps
    for ind, grp in g.groupby("indicator"):
        t = total[ind]
        assert t["assessed"] == len(grp)
        assert t["met"] == int((grp["status"] == "met").sum())
        assert t["missing"] == int((grp["status"] == "missing").sum())


def test_summary_bad_by(client):
    r = client.get("/summary?by=village")
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")


def test_projects_totals(client, tables):
    p = tables.projects
    body = client.get("/projects?limit=5").json()
    assert body["numberMatched"] == len(p) and body["numberReturned"] == 5
    assert [r["rank"] for r in body["projects"]] == [1, 2, 3, 4, 5]
    tot = body["totals"]
    assert tot["total"]["rows"] == len(p)
    assert tot["total"]["cost"] == pytest.approx(p["cost"].sum())
    by_ind = pd.DataFrame(tot["by_indicator"]).groupby("indicator")[["quantity", "cost"]].sum()
    want = p.groupby("indicator")[["quantity", "cost"]].sum()
    for ind in want.index:
        assert by_ind.loc[ind, "cost"] == pytest.approx(want.loc[ind, "cost"])
        assert by_ind.loc[ind, "quantity"] == pytest.approx(want.loc[ind, "quantity"], abs=1e-3)
    by_c = pd.DataFrame(tot["by_county"])
    assert by_c["cost"].sum() == pytest.approx(p["cost"].sum())
    assert "next" in {link["rel"] for link in body["links"]}


@pytest.mark.parametrize("query", ["indicator=water", "indicator=power,road", "priority=3",
                                   "level=natural", "action=build"])
def test_projects_filters(client, tables, query):
    p = tables.projects
    key, value = query.split("=")
    col = {"indicator": "indicator", "priority": "priority", "level": "level",
           "action": "action"}[key]
    vals = value.split(",")
    if key == "priority":
        vals = [int(x) for x in vals]
    want = p[p[col].isin(vals)]
    body = client.get(f"/projects?{query}&limit=1000").json()
    assert body["numberMatched"] == len(want)
    assert [r["rank"] for r in body["projects"]] == want["rank"].tolist()
    assert body["totals"]["total"]["cost"] == pytest.approx(float(np.sum(want["cost"])))


def test_projects_county_filter(client, tables):
    county = tables.projects["county"].dropna().iloc[0]
    body = client.get(f"/projects?county={county}&limit=1000").json()
    assert body["numberMatched"] == int((tables.projects["county"] == county).sum())
    assert client.get("/projects?county=Atlantis").json()["numberMatched"] == 0


@pytest.mark.parametrize("query", ["priority=7", "indicator=bridge", "action=demolish",
                                   "level=city", "limit=-3"])
def test_projects_invalid(client, query):
    r = client.get(f"/projects?{query}")
    assert r.status_code == 400
    assert r.json()["status"] == 400
