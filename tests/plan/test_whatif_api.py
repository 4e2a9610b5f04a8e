"""What-ifs from stored distances agree with a real run under the changed profile; the plan
endpoints serve plans; the CLI writes and compares plans."""

from __future__ import annotations

import shutil
import warnings

import pandas as pd

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

from synth_world import run_cli

from buque.api.app import create_app
from buque.api.settings import Settings
from buque.geo.plan.archive import write_plan
from buque.geo.plan.make import make_plan
from buque.geo.plan.params import make_params
from buque.geo.plan.whatif import WhatIf, restatus
from buque.geo.plan.works import load_run
from buque.geo.run import run_project


def test_threshold_whatif_matches_a_real_run(province, province_run, tmp_path):
    prof = tmp_path / "wide.toml"
    prof.write_text('format = 1\nextends = "national"\nname = "wide"\nversion = "1"\n'
                    '[indicators.water]\nthreshold_m = 1000\n[indicators.road]\n'
                    'threshold_m = 300\n', encoding="utf-8")
    real = run_project(province / "project.toml", tmp_path / "wide", standard=str(prof))
    inp = load_run(province_run)
    params = make_params(inp.profile, {"water.threshold_m": 1000, "road.threshold_m": 300})
    got = restatus(inp.gaps, inp.profile, params)
    want = real.tables.gaps
    m = got.merge(want, on=["village_code", "indicator"], suffixes=("_g", "_w"))
    assert len(m) == len(want)
    # (power is power_supply: a transformer radius and a line distance, not one threshold)
    for ind in ("water", "road"):
        s = m[m["indicator"] == ind]
        assert ((s["status_g"] == "met") == (s["status_w"] == "met")).all(), ind
    wi = WhatIf(inp.gaps, inp.villages, inp.profile).summary(params)
    for ind in ("water", "power", "road"):
        assert wi[ind]["met"] == int(((want["indicator"] == ind) & (want["status"] == "met")).sum())


def test_plan_endpoints_and_cli(province_run, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(province_run, data / "run")
    a = write_plan(data / "plans" / "a", make_plan(province_run, ["4e7"]))
    p = run_cli("plan", province_run, "--budget", "2027=3e7", "--budget", "2028=3e7",
                "--set", "water.threshold_m=1000", "--out", data / "plans" / "b")
    assert p.returncode == 0, p.stderr
    d = run_cli("plan", "diff", a, data / "plans" / "b")
    assert d.returncode == 0 and "funded_works" in d.stdout, d.stderr
    bad = run_cli("plan", province_run, "--set", "water.nope=1", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "water.nope" in bad.stderr
    with TestClient(create_app(Settings(data=data))) as c:
        r = c.get("/plans")
        assert r.status_code == 200
        assert {x["name"] for x in r.json()["plans"]} == {"a", "b"}
        body = c.get("/plans/b").json()
        assert [x["phase"] for x in body["budgets"]] == ["2027", "2028"]
        assert body["parameters"]["set"] == {"water.threshold_m": 1000.0}
        fc = c.get("/plans/a/works?indicator=power&limit=5").json()
        w = pd.read_parquet(a / "works.parquet")
        assert fc["numberMatched"] == int((w["indicator"] == "power").sum())
        assert len(fc["features"]) == 5 and fc["links"][0]["rel"] == "next"
        unfunded = c.get("/plans/a/works?phase=none&limit=10000").json()
        assert unfunded["numberMatched"] == int((~w["funded"]).sum())
        diff = c.get("/plans/a/diff/b").json()
        assert diff["a"]["plan_id"] != diff["b"]["plan_id"]
        wi = c.get("/whatif?set=water.threshold_m=1000").json()
        g = pd.read_parquet(province_run / "gaps.parquet")
        water = g[g["indicator"] == "water"]
        assert wi["indicators"]["water"]["met"] == int((water["distance_m"] <= 1000).sum())
        assert c.get("/whatif?set=clinic.threshold_m=5").status_code == 400
        assert c.get("/plans/nope").status_code == 404
