"""Two plans compared: totals side by side, and each work present in only one of them or
funded, phased or costed differently."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from buque.geo.plan.make import Plan

DIFF_COLUMNS = ["work_id", "indicator", "change", "funded_a", "funded_b", "phase_a", "phase_b",
                "cost_a", "cost_b"]


def diff_plans(a: Plan, b: Plan) -> tuple[dict[str, Any], pd.DataFrame]:
    """``(summary, works)``: the summary has both plans' ids, budgets and totals and their
    differences; ``works`` one row per work that differs (``change`` = added | removed |
    funded | unfunded | phase | cost)."""
    cols = ["work_id", "indicator", "funded", "phase", "cost"]
    wa = pd.DataFrame(a.works[cols])
    wb = pd.DataFrame(b.works[cols])
    m = wa.merge(wb, on="work_id", how="outer", suffixes=("_a", "_b"), indicator=True)
    m["indicator"] = m["indicator_a"].fillna(m["indicator_b"])
    fa = m["funded_a"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    fb = m["funded_b"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    pa = m["phase_a"].astype("string").fillna("")
    pb = m["phase_b"].astype("string").fillna("")
    ca = m["cost_a"].to_numpy(float, na_value=np.nan)
    cb = m["cost_b"].to_numpy(float, na_value=np.nan)
    change = np.select(
        [m["_merge"] == "right_only", m["_merge"] == "left_only", ~fa & fb, fa & ~fb,
         (pa != pb).to_numpy(), ~np.isclose(ca, cb, rtol=0, atol=0.005)],
        ["added", "removed", "funded", "unfunded", "phase", "cost"], "")
    m["change"] = change
    works = m.loc[change != "", [c for c in DIFF_COLUMNS]].sort_values(
        ["change", "indicator", "work_id"], kind="stable").reset_index(drop=True)
    ta, tb = a.meta.get("totals", {}), b.meta.get("totals", {})
    keys = ("works", "funded_works", "verify", "cost", "funded_cost")
    summary = {
        "a": {"plan_id": a.meta.get("plan_id"), "run_id": a.meta.get("run", {}).get("run_id"),
              "budgets": a.meta.get("budgets"), "parameters": a.meta.get("parameters", {}).get("set")},
        "b": {"plan_id": b.meta.get("plan_id"), "run_id": b.meta.get("run", {}).get("run_id"),
              "budgets": b.meta.get("budgets"), "parameters": b.meta.get("parameters", {}).get("set")},
        "totals": {k: {"a": ta.get(k), "b": tb.get(k),
                       "change": (tb.get(k) or 0) - (ta.get(k) or 0)} for k in keys},
        "villages_completed": {c: {"a": ta.get("villages", {}).get(c, {}).get("completed"),
                                   "b": tb.get("villages", {}).get(c, {}).get("completed")}
                               for c in ("1", "2", "3")},
        "changes": {str(k): int(v) for k, v in works["change"].value_counts().sort_index().items()},
    }
    return summary, works
