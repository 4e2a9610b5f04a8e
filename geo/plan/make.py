"""``buque plan``: a run archive in, works with costs, priorities and phases out."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from buque.geo.archive import MANIFEST, sha256_file
from buque.geo.columns import equals
from buque.geo.plan.budget import allocate, closure, work_priority
from buque.geo.plan.params import Params, make_params, project_sets
from buque.geo.plan.whatif import restatus
from buque.geo.plan.works import RunInput, build_works, load_run
from buque.geo.version import tool_version
from buque.layers.errors import BuqueInputError

OBJECTIVES = ("villages", "people")
PLAN_FORMAT = 1


@dataclass
class Plan:
    meta: dict[str, Any]               # plan.json
    works: gpd.GeoDataFrame            # works.parquet
    work_villages: pd.DataFrame        # work_villages.csv
    phases: pd.DataFrame               # phases.csv


def parse_budgets(values: list[str]) -> list[tuple[str, float]]:
    """``["5e8"]`` -> ``[("1", 5e8)]``; ``["2027=3e8", "2028=2e8"]`` -> one phase per value, in
    order. ``inf`` (or ``unlimited``) is no limit."""
    out = []
    for i, text in enumerate(values or ["inf"]):
        label, sep, amount = text.rpartition("=")
        label = label.strip() if sep else str(i + 1)
        amount = amount.strip().replace("_", "").replace(",", "")
        try:
            x = math.inf if amount.lower() in ("inf", "unlimited") else float(amount)
        except ValueError:
            x = math.nan
        if not (x >= 0) or not label:
            raise BuqueInputError("--budget", f"{text!r}: expected CNY or PHASE=CNY (a "
                                  "non-negative amount, or inf)", field="budget")
        out.append((label, x))
    if len({lb for lb, _ in out}) != len(out):
        raise BuqueInputError("--budget", "phase labels repeat", field="budget")
    return out


def make_plan(run: str | Path | RunInput, budgets: list[str] | None = None,
              sets: dict[str, float] | None = None, objective: str = "villages") -> Plan:
    """Plan the works of a run; ``sets`` override the profile's parameters (``--set``)."""
    if objective not in OBJECTIVES:
        raise BuqueInputError("--objective", f"must be one of {OBJECTIVES}", field="objective")
    inp = run if isinstance(run, RunInput) else load_run(run)
    allsets = {**project_sets(inp.manifest.get("project", {}).get("path")), **(sets or {})}
    params = make_params(inp.profile, allsets)
    phases = parse_budgets(budgets or [])
    gaps = restatus(inp.gaps, inp.profile, params)
    works, pairs = build_works(inp, params, gaps)
    return _fund(inp, params, gaps, works, pairs, phases, objective)


def _fund(inp: RunInput, params: Params, gaps: pd.DataFrame, works: gpd.GeoDataFrame,
          pairs: pd.DataFrame, phases: list[tuple[str, float]], objective: str) -> Plan:
    v = inp.villages
    n_w = len(works)
    widx = pd.Index(works["work_id"])
    if not widx.is_unique:
        raise AssertionError("work ids repeat")
    parent = widx.get_indexer(works["parent"].astype(object).where(works["parent"].notna(), ""))
    cost = works["cost"].to_numpy(float)
    pw = widx.get_indexer(pairs["work_id"])
    pv = pd.Index(v["code"].astype(str)).get_indexer(pairs["village_code"].astype(str))
    units, unit_of_v = np.unique(v["unit"].astype(str).to_numpy(), return_inverse=True)
    unit_of_v = unit_of_v.ravel()
    uprio = np.full(len(units), 3, dtype=np.int64)
    np.minimum.at(uprio, unit_of_v, v["priority"].to_numpy(np.int64))
    if objective == "people":
        pop = v["population"].to_numpy(float, na_value=0.0)
        admin = equals(v["level"], "admin")
        benefit = np.zeros(len(units))
        np.add.at(benefit, unit_of_v[admin], pop[admin])
        nat = np.zeros(len(units))
        np.add.at(nat, unit_of_v[~admin], pop[~admin])
        benefit = np.where(benefit > 0, benefit, nat)
    else:
        benefit = np.ones(len(units))
    is_verify = equals(works["action"], "verify")
    real = ~is_verify[pw]
    need = closure(unit_of_v[pv[real]], pw[real], parent, len(units))
    alloc = allocate(cost, parent, need, uprio, benefit, [b for _, b in phases])
    funded = alloc.funded | is_verify
    ph = np.where(is_verify, 0, alloc.phase)
    labels = np.array([lb for lb, _ in phases] + [None], dtype=object)
    wprio = work_priority(closure(unit_of_v[pv], pw, parent, len(units)), uprio)
    # served villages per work, and the county of the first (lowest code) of them
    first = pd.DataFrame({"w": pw, "code": pairs["village_code"].astype(str).to_numpy(),
                          "county": v["county"].astype(str).to_numpy()[pv]}
                         ).sort_values(["w", "code"]).drop_duplicates("w")
    county = np.full(n_w, None, dtype=object)
    county[first["w"].to_numpy()] = first["county"].to_numpy()
    # a shared trunk serves no village itself: the county of a work that hangs from it
    while True:
        child = np.flatnonzero((parent >= 0) & pd.notna(county))
        gap = pd.isna(county[parent[child]])
        if not gap.any():
            break
        county[parent[child[gap]]] = county[child[gap]]
    n_v = pd.Series(pv).groupby(pw).nunique().reindex(range(n_w), fill_value=0).to_numpy()
    out = works.assign(priority=wprio, phase=pd.array(labels[np.where(ph >= 0, ph, -1)],
                                                      dtype="string"),
                       funded=funded, villages=n_v.astype(np.int64),
                       county=pd.array(county, dtype="string"))
    order = np.lexsort((out["work_id"].to_numpy(), np.where(ph >= 0, ph, 1 << 30), wprio))
    out = out.iloc[order].reset_index(drop=True)
    cols = ["work_id", "indicator", "action", "item", "unit", "quantity", "unit_cost", "cost",
            "priority", "phase", "funded", "villages", "county", "parent", "cluster", "line_m"]
    extra = [c for c in ("candidate_id", "radius_m") if c in out]
    out = gpd.GeoDataFrame(out[cols + extra + ["geometry"]], geometry="geometry", crs="EPSG:4326")
    wv = pairs.assign(_o=pd.Index(out["work_id"]).get_indexer(pairs["work_id"])).sort_values(
        ["_o", "village_code", "indicator"]).drop(columns="_o").reset_index(drop=True)
    phase_table = _phases(inp, gaps, out, pairs, pv, unit_of_v, units, alloc.complete_phase,
                          phases)
    meta = _meta(inp, params, phases, objective, out, alloc, uprio)
    return Plan(meta=meta, works=out, work_villages=wv, phases=phase_table)


def _phases(inp: RunInput, gaps: pd.DataFrame, works: pd.DataFrame, pairs: pd.DataFrame,
            pv: np.ndarray, unit_of_v: np.ndarray, units: np.ndarray, complete: np.ndarray,
            phases: list[tuple[str, float]]) -> pd.DataFrame:
    """Per phase, county and indicator: the cost funded, villages completed, and the rate after
    the phase against the profile's target and deadline."""
    v = inp.villages
    vcounty = v["county"].astype(str).to_numpy()
    g_county = vcounty[pd.Index(v["code"].astype(str)).get_indexer(gaps["village_code"].astype(str))]
    g = pd.DataFrame({"county": g_county, "indicator": gaps["indicator"].to_numpy(),
                      "met": equals(gaps["status"], "met")})
    assessed = g.groupby(["county", "indicator"]).size()
    met0 = g.groupby(["county", "indicator"])["met"].sum()
    w_phase = pd.Series(works["phase"].to_numpy(), index=works["work_id"])
    p_phase = w_phase.reindex(pairs["work_id"]).to_numpy()
    is_v = works.set_index("work_id")["action"].reindex(pairs["work_id"]).to_numpy() == "verify"
    pp = pd.DataFrame({"county": vcounty[pv], "indicator": pairs["indicator"].to_numpy(),
                       "phase": p_phase, "verify": is_v})
    unit_county = pd.Series(vcounty).groupby(unit_of_v).first()
    rows = []
    labels = [lb for lb, _ in phases]
    inds = inp.profile.indicators
    for k, lb in enumerate(labels):
        done_pairs = pp[~pp["verify"] & pp["phase"].isin(labels[:k + 1])]
        fixed = done_pairs.groupby(["county", "indicator"]).size()
        wk = works[(works["phase"] == lb) & (works["action"] != "verify")]
        cost = wk.groupby(["county", "indicator"])["cost"].sum()
        comp = pd.Series(complete == k).groupby(unit_county.reindex(range(len(units))).to_numpy()).sum()
        for (county, ind), n in assessed.items():
            met = int(met0.get((county, ind), 0) + fixed.get((county, ind), 0))
            spec = inds.get(ind)
            target = spec.target_rate if spec else None
            rows.append({"phase": lb, "county": county, "indicator": ind,
                         "cost": round(float(cost.get((county, ind), 0.0)), 2),
                         "villages_completed": int(comp.get(county, 0)),
                         "assessed": int(n), "met": met, "rate": round(met / n, 6) if n else None,
                         "target": target,
                         "deadline": spec.deadline.isoformat() if spec else None,
                         "meets_target": bool(target is not None and n and met / n >= target)})
    cols = ["phase", "county", "indicator", "cost", "villages_completed", "assessed", "met",
            "rate", "target", "deadline", "meets_target"]
    return pd.DataFrame(rows, columns=cols)


def _meta(inp: RunInput, params: Params, phases: list[tuple[str, float]], objective: str,
          works: pd.DataFrame, alloc, uprio: np.ndarray) -> dict[str, Any]:
    run_sha = sha256_file(inp.path / MANIFEST)
    budgets = [{"phase": lb, "budget": None if math.isinf(b) else b,
                "spent": round(float(s), 2)} for (lb, b), s in zip(phases, alloc.spent, strict=True)]
    parameters = {"objective": objective, "set": params.sets,
                  "costs": {k: {f: getattr(c, f) for f in ("works", "threshold_m", "radius_m",
                                                           "unit_cost", "upgrade_unit_cost",
                                                           "harden_unit_cost")}
                            for k, c in params.costs.items()},
                  "county_factor": params.county_factor}
    key = json.dumps({"run": run_sha, "parameters": parameters, "budgets": budgets,
                      "format": PLAN_FORMAT}, sort_keys=True, default=str)
    real = works[works["action"] != "verify"]
    fw = real[real["funded"]]
    cp = alloc.complete_phase
    by_class = {str(c): {"with_gaps": int(((uprio == c) & (cp != -2)).sum()),
                         "completed": int(((uprio == c) & (cp >= 0)).sum())} for c in (1, 2, 3)}
    lines = {}
    for ind, g in real.groupby("indicator", sort=True):
        lines[ind] = {"km": round(float(g["line_m"].sum()) / 1000, 3),
                      "funded_km": round(float(g.loc[g["funded"], "line_m"].sum()) / 1000, 3),
                      "works": int(len(g)), "cost": round(float(g["cost"].sum()), 2)}
    return {
        "format": PLAN_FORMAT,
        "plan_id": hashlib.sha256(key.encode()).hexdigest()[:16],
        "tool": {"name": "buque", "version": tool_version()},
        "run": {"run_id": inp.manifest.get("run_id"), "path": str(inp.path),
                "manifest_sha256": run_sha},
        "profile": {"name": inp.profile.name, "sha256": inp.profile.content_hash},
        "parameters": parameters,
        "budgets": budgets,
        "totals": {
            "works": int(len(real)), "funded_works": int(len(fw)),
            "verify": int((works["action"] == "verify").sum()),
            "cost": round(float(real["cost"].sum()), 2),
            "funded_cost": round(float(fw["cost"].sum()), 2),
            "villages": by_class,
            "by_indicator": lines,
        },
    }
