"""``/discrepancies``, ``/progress`` and ``/progress/regressions`` over real run archives."""

from __future__ import annotations

import io
import json
import shutil

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest

from buque.geo.ledger import check_run
from buque.geo.run import run_project
from buque.layers.project import LedgerSpec


@pytest.fixture(scope="module")
def folder(synth, tmp_path_factory):
    d = tmp_path_factory.mktemp("verify-api")
    shutil.copytree(synth.dir, d / "proj")
    runs = d / "runs"
    run_project(d / "proj" / "project.toml", runs / "r1")
    roads = gpd.read_file(d / "proj" / "roads.shp")
    pyogrio.write_dataframe(roads[roads["LXBM"] != "R1"], d / "proj" / "roads.shp",
                            driver="ESRI Shapefile")
    run_project(d / "proj" / "project.toml", runs / "r2")
    for name, when in (("r1", "2025-03-01T00:00:00+00:00"), ("r2", "2025-06-01T00:00:00+00:00")):
        m = json.loads((runs / name / "manifest.json").read_text("utf-8"))
        m["created"] = when
        (runs / name / "manifest.json").write_text(json.dumps(m, ensure_ascii=False), "utf-8")
    led = d / "ledger.csv"
    led.write_text("村代码,通硬化路,标准化村卫生室\n610902102203,是,是\n610902102202,否,否\n"
                   "610902102204,是,\n", encoding="utf-8")
    check_run(runs / "r2", LedgerSpec(path=led))
    return runs


def test_discrepancies(folder, make_client):
    with make_client(folder) as c:
        r = c.get("/discrepancies")
        assert r.status_code == 200, r.text
        body = r.json()
        got = {(x["village_code"], x["indicator"], x["class"]) for x in body["discrepancies"]}
        assert got == {("610902102203", "road", "claimed_met_evidence_missing"),
                       ("610902102203", "clinic", "claimed_met_evidence_unknown"),
                       ("610902102204", "road", "claimed_met_evidence_missing")}
        assert body["counts"] == [{"county": "汉滨区", "claimed_met_evidence_missing": 2,
                                   "claimed_met_evidence_unknown": 1,
                                   "claimed_missing_evidence_met": 0}]
        one = c.get("/discrepancies", params={"class": "claimed_met_evidence_unknown"}).json()
        assert [x["indicator"] for x in one["discrepancies"]] == ["clinic"]
        csv = c.get("/discrepancies", params={"f": "csv", "indicator": "road"})
        d = pd.read_csv(io.StringIO(csv.content.decode("utf-8-sig")), dtype=str)
        assert set(d["village_code"]) == {"610902102203", "610902102204"}
        assert c.get("/discrepancies", params={"class": "nonsense"}).status_code == 400
        r1 = json.loads((folder / "r1" / "manifest.json").read_text("utf-8"))["run_id"]
        none = c.get("/discrepancies", params={"run": r1})
        assert none.status_code == 200 and none.json()["checked"] is False
        assert none.json()["discrepancies"] == [] and r.json()["checked"] is True


def test_progress_and_regressions(folder, make_client):
    with make_client(folder) as c:
        r = c.get("/progress", params={"indicator": "road"})
        assert r.status_code == 200, r.text
        body = r.json()
        rates = [x["rate"] for x in body["series"]]
        own = []
        for name in ("r1", "r2"):
            s = pd.read_csv(folder / name / "summary.csv", encoding="utf-8-sig")
            own.append(float(s[(s["scope"] == "county") & (s["indicator"] == "road")]["rate"]
                             .iloc[0]))
        assert rates == own
        assert body["pace"][0]["per_day"] < 0 and body["pace"][0]["reached_on"] is None
        reg = c.get("/progress/regressions").json()["regressions"]
        assert {(x["village_code"], x["cause"]) for x in reg} == {
            ("610902102201", "feature_removed"), ("610902102202", "feature_removed")}
        assert all("R1" in x["detail"] for x in reg)
        assert c.get("/progress", params={"indicator": "nope"}).status_code == 400


def test_an_indicator_without_regressions_is_a_valid_filter(folder, make_client):
    with make_client(folder) as c:
        r = c.get("/progress/regressions", params={"indicator": "broadband"})
        assert r.status_code == 200 and r.json()["regressions"] == []
