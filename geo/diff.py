"""Comparing two runs: which villages changed status, per indicator.

Changes from run ``a`` (earlier) to run ``b`` (later), per (village, indicator):

- ``fixed``: missing or unknown in ``a``, met in ``b``;
- ``regressed``: met in ``a``, missing in ``b`` (a gap that came back; what offices watch most);
- ``newly_assessed``: assessed in ``b`` only (a new village, or one the indicator now applies to);
- ``removed``: assessed in ``a`` only;
- ``changed``: any other change of status (missing <-> unknown, met -> unknown).

Pure pandas, vectorised (one outer merge).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

CHANGES = ("fixed", "regressed", "newly_assessed", "removed", "changed")
DIFF_COLUMNS = ["village_code", "indicator", "level", "change", "status_a", "status_b",
                "distance_m_a", "distance_m_b"]


def diff_gaps(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Every (village, indicator) whose status differs between gaps tables ``a`` and ``b``.

    Returns :data:`DIFF_COLUMNS`, ordered by indicator (in ``b``'s order, then ``a``'s), change
    (in :data:`CHANGES` order) and village code.
    """
    cols = ["village_code", "indicator", "level", "status", "distance_m"]
    left = a[cols].astype({"village_code": "string", "indicator": "string", "status": "string"})
    right = b[cols].astype({"village_code": "string", "indicator": "string", "status": "string"})
    m = left.merge(right, on=["village_code", "indicator"], how="outer", suffixes=("_a", "_b"),
                   indicator="_side")
    sa = m["status_a"].astype("object").where(m["status_a"].notna(), None).to_numpy()
    sb = m["status_b"].astype("object").where(m["status_b"].notna(), None).to_numpy()
    side = m["_side"].astype(str).to_numpy()
    change = np.select(
        [side == "right_only", side == "left_only",
         (sa != "met") & (sb == "met"), (sa == "met") & (sb == "missing"), sa != sb],
        ["newly_assessed", "removed", "fixed", "regressed", "changed"], default="")
    m["change"] = change
    m["level"] = m["level_b"].astype("string").fillna(m["level_a"].astype("string"))
    out = m.loc[change != "", ["village_code", "indicator", "level", "change", "status_a",
                               "status_b", "distance_m_a", "distance_m_b"]].copy()
    order_ind = list(dict.fromkeys([*b["indicator"].astype(str).unique(),
                                    *a["indicator"].astype(str).unique()]))
    out["_i"] = out["indicator"].astype(str).map({k: i for i, k in enumerate(order_ind)})
    out["_c"] = out["change"].map({k: i for i, k in enumerate(CHANGES)})
    out = out.sort_values(["_i", "_c", "village_code"], kind="stable")
    return out[DIFF_COLUMNS].reset_index(drop=True)


def filter_diff(d: pd.DataFrame, indicator: Sequence[str] = (), change: Sequence[str] = ()
                ) -> pd.DataFrame:
    m = np.ones(len(d), dtype=bool)
    if indicator:
        m &= d["indicator"].isin(list(indicator)).to_numpy(bool)
    if change:
        m &= d["change"].isin(list(change)).to_numpy(bool)
    return d.loc[m].reset_index(drop=True)


def diff_counts(d: pd.DataFrame, indicators: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{indicator: {change: count}}`` with every change key present (zeros included)."""
    ct = d.groupby(["indicator", "change"]).size() if len(d) else pd.Series(dtype=int)
    keys = list(dict.fromkeys([*indicators, *d["indicator"].astype(str).unique()]))
    return {k: {c: int(ct.get((k, c), 0)) for c in CHANGES} for k in keys}


def diff_codes(d: pd.DataFrame, indicators: Sequence[str]) -> dict[str, dict[str, list]]:
    """``{indicator: {change: [village codes]}}``; ``changed`` entries carry from/to statuses."""
    keys = list(dict.fromkeys([*indicators, *d["indicator"].astype(str).unique()]))
    out: dict[str, dict[str, list]] = {k: {c: [] for c in CHANGES} for k in keys}
    for (k, c), g in d.groupby(["indicator", "change"], sort=False):
        codes = g["village_code"].astype(str).tolist()
        if c == "changed":
            out[str(k)][str(c)] = [{"code": code, "from": fa, "to": tb} for code, fa, tb in
                                   zip(codes, g["status_a"].astype(str), g["status_b"].astype(str),
                                       strict=True)]
        else:
            out[str(k)][str(c)] = codes
    return out
