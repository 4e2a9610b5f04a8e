"""buque plan: works cover every pair once, budgets hold, priorities hold, lines are short,
plans are reproducible, and applying a plan fixes exactly what it funds."""

from __future__ import annotations

import filecmp

import numpy as np
import pandas as pd
import pytest
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import cdist

from buque.geo.metric import transform_xy, utm_crs
from buque.geo.plan.archive import read_plan, write_plan
from buque.geo.plan.make import make_plan
from buque.geo.run import run_project


def _pairs(df: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(df["village_code"].astype(str), df["indicator"].astype(str), strict=True))


@pytest.fixture(scope="module")
def plans(province_run, andorra_run):
    out = {}
    for name, run in (("province", province_run), ("andorra", andorra_run.out)):
        g = pd.read_parquet(run / "gaps.parquet")
        full = make_plan(run, ["inf"]).meta["totals"]["cost"]
        out[name] = (run, g, full, make_plan(run, [f"{full * 0.4:.0f}"]))
    return out


@pytest.mark.parametrize("name", ["province", "andorra"])
def test_every_pair_in_exactly_one_work(plans, name):
    run, g, _, plan = plans[name]
    wv = plan.work_villages
    assert not wv.duplicated(["village_code", "indicator"]).any()
    action = wv["work_id"].map(plan.works.set_index("work_id")["action"])
    assert action.notna().all()
    assert _pairs(wv[action != "verify"]) == _pairs(g[g["status"] == "missing"])
    assert _pairs(wv[action == "verify"]) == _pairs(g[g["status"] == "unknown"])
    assert (plan.works.loc[plan.works["action"] == "verify", "cost"] == 0).all()


@pytest.mark.parametrize("name", ["province", "andorra"])
def test_funded_cost_within_budget_and_priorities(plans, name):
    _, _, full, plan = plans[name]
    w = plan.works
    budget = plan.meta["budgets"][0]["budget"]
    assert 0 < budget < full
    assert w.loc[w["funded"], "cost"].sum() <= budget + 1e-6
    assert plan.meta["totals"]["funded_cost"] <= budget + 0.01
    # no funded priority-3-only work while a priority-1 work that costs less (with the unfunded
    # works it depends on) is unfunded
    parent = dict(zip(w["work_id"], w["parent"], strict=True))
    cost = dict(zip(w["work_id"], w["cost"], strict=True))
    funded = dict(zip(w["work_id"], w["funded"], strict=True))

    def chain(wid):
        c = 0.0
        while isinstance(wid, str) and not funded[wid]:
            c += cost[wid]
            wid = parent[wid]
        return c

    p1 = [chain(x) for x in w.loc[(w["priority"] == 1) & ~w["funded"], "work_id"]]
    p3 = w.loc[(w["priority"] == 3) & w["funded"] & (w["cost"] > 0), "cost"]
    if p1 and len(p3):
        assert min(p1) > p3.max()


def test_phases_hold_cumulative_budgets(province_run):
    full = make_plan(province_run, ["inf"]).meta["totals"]["cost"]
    b = [full * 0.2, full * 0.15, full * 0.3]
    plan = make_plan(province_run, [f"2027={b[0]:.0f}", f"2028={b[1]:.0f}", f"2029={b[2]:.0f}"])
    w = plan.works[plan.works["funded"] & (plan.works["action"] != "verify")]
    spent = w.groupby("phase")["cost"].sum()
    for k, lb in enumerate(["2027", "2028", "2029"]):
        assert spent.loc[:lb].sum() <= sum(b[:k + 1]) + 1e-3
    assert {"2027", "2028", "2029"} <= set(plan.phases["phase"])
    # a work is never funded before the work it depends on
    ph = dict(zip(plan.works["work_id"], plan.works["phase"], strict=True))
    for wid, par in zip(w["work_id"], w["parent"], strict=True):
        if isinstance(par, str):
            assert ph[par] is not pd.NA and ph[par] <= ph[wid]


def _emst_bound(run, plan, indicator):
    """Independently: the Euclidean MST over the extension villages and a root joined to each
    at its run distance (dense, all pairs), in the villages' UTM zone."""
    v = pd.read_parquet(run / "villages.parquet", columns=["code", "ref_lon", "ref_lat"])
    g = pd.read_parquet(run / "gaps.parquet")
    g = g[g["indicator"] == indicator].set_index("village_code")
    wv = plan.work_villages[plan.work_villages["indicator"] == indicator]
    act = wv["work_id"].map(plan.works.set_index("work_id")["action"])
    codes = wv.loc[act.isin(["extend", "build"]), "village_code"].astype(str)
    vv = v.set_index("code").loc[codes]
    zone = int((vv["ref_lon"].mean() + 180) // 6) + 1
    xy = transform_xy(vv[["ref_lon", "ref_lat"]].to_numpy(), utm_crs(zone, True))
    d = g.loc[codes, "distance_m"].to_numpy(float)
    n = len(xy)
    m = np.zeros((n + 1, n + 1))
    m[1:, 1:] = cdist(xy, xy) + 1e-9
    m[0, 1:] = np.where(np.isfinite(d), d, 1e12)
    bound = minimum_spanning_tree(m).sum()
    per_village = np.nansum(d)
    return bound, per_village, n


@pytest.mark.parametrize("name", ["province", "andorra"])
def test_line_km_at_most_the_euclidean_mst(plans, name):
    run, _, _, plan = plans[name]
    for ind in ("power", "water"):
        bound, per_village, n = _emst_bound(run, plan, ind)
        w = plan.works[plan.works["indicator"] == ind]
        planned = w.loc[w["action"] == "extend", "line_m"].sum()
        if n:
            assert planned <= bound + 1e-3, (ind, planned, bound)
            print(f"{name} {ind}: {n} villages, planned {planned / 1000:.1f} km, EMST "
                  f"{bound / 1000:.1f} km, per-village sum {per_village / 1000:.1f} km, ratio "
                  f"{planned / per_village:.3f}")


def test_same_plan_twice_is_identical(province_run, tmp_path):
    a = write_plan(tmp_path / "a", make_plan(province_run, ["2027=5e7", "2028=5e7"]))
    b = write_plan(tmp_path / "b", make_plan(province_run, ["2027=5e7", "2028=5e7"]))
    for f in ("plan.json", "works.parquet", "work_villages.csv", "phases.csv"):
        assert filecmp.cmp(a / f, b / f, shallow=False), f
    back = read_plan(a)
    assert back.meta["plan_id"] == make_plan(province_run, ["2027=5e7", "2028=5e7"]).meta["plan_id"]
    assert len(back.works) and back.works.crs.to_epsg() == 4326


@pytest.mark.parametrize("budget", ["6e7", "inf"])
def test_applied_plan_fixes_what_it_funds(province, province_run, tmp_path, budget):
    plan_dir = write_plan(tmp_path / "plan", make_plan(province_run, [budget]))
    rerun = run_project(province / "project.toml", tmp_path / "rerun", with_plan=plan_dir)
    assert rerun.manifest["plan"]["plan_id"] == read_plan(plan_dir).meta["plan_id"]
    a = pd.read_parquet(province_run / "gaps.parquet")
    b = pd.read_parquet(tmp_path / "rerun" / "gaps.parquet")
    m = a.merge(b, on=["village_code", "indicator"], suffixes=("_a", "_b"))
    assert len(m) == len(a)
    assert not ((m["status_a"] == "met") & (m["status_b"] != "met")).any()
    plan = read_plan(plan_dir)
    wv = plan.work_villages.merge(plan.works[["work_id", "funded", "action"]], on="work_id")
    fixed = _pairs(wv[wv["funded"] & (wv["action"] != "verify")])
    now = m.set_index(["village_code", "indicator"])["status_b"]
    assert all(now.loc[p] == "met" for p in fixed)
    if budget == "inf":
        assert not (m["status_b"] == "missing").any()
