"""The tables behind the ledger and the popups: deficient villages and rates, by joins only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from buque.geo.report.filters import ReportData
from buque.layers.schema import COUNT_COLUMNS

GAP_KEY = ["village_code", "indicator"]
DEFICIENT_COLUMNS = ["county", "township", "code", "name", "level", "parent", "population",
                     "households", "poor", "exit_year", "distance_m", "evidence_id", "reason",
                     "failed", "action", "item", "quantity", "unit", "unit_cost", "cost", "priority",
                     "deadline"]
UNKNOWN_COLUMNS = ["county", "township", "code", "name", "level", "parent", "indicator",
                   "reason", "failed", "candidate_id", "candidate_distance_m", "distance_m", "evidence_id",
                   "deadline"]
SUMMARY_COLUMNS = ["county", "township", "indicator", *COUNT_COLUMNS,
                   "rate", "target", "shortfall", "meets_target", "deadline", "cost"]
VILLAGE_ATTRS = ["code", "name", "county", "township", "level", "village_code", "population",
                 "households", "poor", "exit_year"]


def _attrs(data: ReportData) -> pd.DataFrame:
    v = pd.DataFrame(data.villages[[c for c in VILLAGE_ATTRS if c in data.villages.columns]])
    return v.rename(columns={"village_code": "parent"})


def gap_rows(data: ReportData, status: str) -> pd.DataFrame:
    """Gap rows of ``status`` with the village's attributes (one row per village, indicator)."""
    g = data.gaps[data.gaps["status"] == status]
    g = g.drop(columns=["level"], errors="ignore")
    return g.merge(_attrs(data), left_on="village_code", right_on="code", how="left",
                   validate="many_to_one")


def deficient(data: ReportData, key: str) -> pd.DataFrame:
    """Villages missing indicator ``key``, with their remedy; sorted by place and name."""
    g = gap_rows(data, "missing")
    g = g[g["indicator"] == key]
    p = data.projects[data.projects["indicator"] == key].drop_duplicates(GAP_KEY)
    pcols = ["village_code", "action", "item", "quantity", "unit", "unit_cost", "cost",
             "priority", "deadline"]
    out = g.merge(p[[c for c in pcols if c in p.columns]], on="village_code", how="left",
                  validate="one_to_one")
    if "deadline" not in out or out["deadline"].isna().any():
        dl = data.indicator(key).deadline.isoformat()
        out["deadline"] = out.get("deadline", pd.Series(index=out.index, dtype=object)).fillna(dl)
    for c in DEFICIENT_COLUMNS:
        if c not in out:
            out[c] = np.nan
    out = out.sort_values(["county", "township", "priority", "code"], na_position="last",
                          kind="stable")
    return out[DEFICIENT_COLUMNS].reset_index(drop=True)


def unknowns(data: ReportData) -> pd.DataFrame:
    """(village, indicator) pairs whose status could not be decided, with the reason."""
    g = gap_rows(data, "unknown")
    order = {k: i for i, k in enumerate(data.indicators)}
    g["deadline"] = g["indicator"].map({k: data.indicator(k).deadline.isoformat()
                                        for k in data.indicators})
    g["_o"] = g["indicator"].map(order)
    g = g.sort_values(["_o", "county", "township", "code"], na_position="last", kind="stable")
    for c in UNKNOWN_COLUMNS:
        if c not in g:
            g[c] = np.nan
    return g[UNKNOWN_COLUMNS].reset_index(drop=True)


def summary_table(data: ReportData) -> pd.DataFrame:
    """Rates against targets: a total per indicator, then each county and its townships."""
    s = data.summary.copy()
    if s.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    s["township"] = s["township"].astype("string")
    if "scope" in s:  # county rows: no township; township rows of villages with none: say so
        s.loc[s["scope"] == "county", "township"] = pd.NA
        s.loc[(s["scope"] == "township") & s["township"].fillna("").eq(""), "township"] = "(未分配)"
        s = s.drop(columns=["scope"])
    cost = data.projects.groupby(["county", "township", "indicator"], dropna=False)["cost"].sum()
    county_cost = data.projects.groupby(["county", "indicator"], dropna=False)["cost"].sum()
    is_county = (s["scope"] == "county") if "scope" in s else s["township"].isna()
    key_t = pd.MultiIndex.from_frame(s[["county", "township", "indicator"]])
    key_c = pd.MultiIndex.from_frame(s[["county", "indicator"]])
    s["cost"] = np.where(is_county, county_cost.reindex(key_c).to_numpy(dtype=float),
                         cost.reindex(key_t).to_numpy(dtype=float))
    s["cost"] = s["cost"].fillna(0.0)
    counties = s[is_county]
    order = {k: i for i, k in enumerate(data.indicators)}
    parts = [s]
    if counties["county"].nunique() > 1:
        tot = counties.groupby("indicator", sort=False)[["assessed", "met", "missing", "unknown",
                                                          "cost"]].sum().reset_index()
        first = counties.drop_duplicates("indicator").set_index("indicator")
        tot["target"] = tot["indicator"].map(first["target"])
        tot["deadline"] = tot["indicator"].map(first["deadline"])
        tot["rate"] = (tot["met"] / tot["assessed"].where(tot["assessed"] > 0)).round(4)
        tot["shortfall"] = np.maximum(
            np.ceil(tot["target"] * tot["assessed"] - 1e-9) - tot["met"], 0).astype(int)
        tot["meets_target"] = tot["shortfall"] == 0
        tot["county"] = pd.NA
        tot["township"] = pd.NA
        tot["_total"] = 0
        parts.insert(0, tot)
    out = pd.concat(parts, ignore_index=True)
    out["_total"] = out.get("_total", pd.Series(1, index=out.index)).fillna(1)
    out["_town"] = out["township"].notna().astype(int)
    out["_o"] = out["indicator"].map(order)
    out = out.sort_values(["_total", "county", "_town", "township", "_o"], na_position="first",
                          kind="stable")
    return out[SUMMARY_COLUMNS].reset_index(drop=True)
