"""What-ifs: a run's statuses under changed distance thresholds, from its stored distances.

For a ``within_distance`` indicator, ``distance_m`` is the distance to the nearest qualifying
feature, so under a threshold ``t'`` a pair is met exactly when ``distance_m <= t'``; nothing
else is re-read. What the run stored of non-qualifying and unverifiable features only reaches
the original threshold, so under a larger threshold a pair that is not met keeps its status
(``missing`` or ``unknown``), and under a smaller one a pair that is no longer met becomes
``missing`` (``unknown`` if it was held ``unknown`` already); its candidate is kept only while
still within ``t'``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from buque.geo.columns import equals
from buque.geo.plan.params import Params
from buque.layers.profile import Profile
from buque.layers.schema import STATUSES


def restatus(gaps: pd.DataFrame, profile: Profile, params: Params) -> pd.DataFrame:
    """``gaps`` with status, reason and candidate re-derived for the indicators whose
    ``threshold_m`` ``params`` changed (the same frame when none did)."""
    changed = [k for k, c in params.costs.items()
               if c.threshold_m is not None and c.rule == "within_distance"
               and c.threshold_m != profile.indicators[k].threshold_m]
    if not changed:
        return gaps
    g = gaps.copy()
    status = g["status"].astype(object).to_numpy().copy()
    reason = g["reason"].astype(object).to_numpy().copy()
    cand = g["candidate_id"].astype(object).to_numpy().copy()
    d = g["distance_m"].to_numpy(float, na_value=np.nan)
    cd = g["candidate_distance_m"].to_numpy(float, na_value=np.nan)
    for key in changed:
        t = params.costs[key].threshold_m
        sel = equals(g["indicator"], key)
        met = sel & (d <= t)
        was_met = sel & (status == "met")
        status[met], reason[met] = "met", "within_threshold"
        cand[met] = None
        lost = was_met & ~met
        status[lost] = "missing"
        reason[lost] = np.where(np.isfinite(d[lost]), "none_within_threshold",
                                "no_qualifying_feature")
        far = sel & ~met & ~(cd <= t) & pd.notna(cand)
        cand[far] = None
        gone = far & (status == "missing") & (reason == "non_qualifying_nearby")
        reason[gone] = "none_within_threshold"
    g["status"] = pd.array(status, dtype="string")
    g["reason"] = pd.array(reason, dtype="string")
    g["candidate_id"] = pd.array(cand, dtype="string")
    return g


class WhatIf:
    """A run's gaps held as arrays, to answer "what if" summaries in milliseconds.

    :meth:`summary` gives, under changed parameters, per indicator the pairs met / missing /
    unknown, the rate against the target, and the standalone cost of the missing pairs (each
    pair alone: a line of ``max(distance - reach, 0)`` km for a network indicator, one site or
    upgrade otherwise, times the county factor): the remedy-list way of costing, an upper
    bound of what a plan's shared works cost. Thresholds are re-applied as :func:`restatus`
    does; nothing is re-read.
    """

    def __init__(self, gaps: pd.DataFrame, villages: pd.DataFrame, profile: Profile) -> None:
        from buque.geo.columns import codes

        self.profile = profile
        self.keys = list(profile.indicators)
        self.ind = codes(gaps["indicator"], self.keys)
        self.status = codes(gaps["status"], STATUSES)
        self.nonq = equals(gaps["reason"], "non_qualifying_nearby")
        self.d = gaps["distance_m"].to_numpy(float, na_value=np.nan)
        self.cd = gaps["candidate_distance_m"].to_numpy(float, na_value=np.nan)
        vpos = pd.Index(villages["code"].astype(str)).get_indexer(gaps["village_code"].astype(str))
        counties, cidx = np.unique(villages["county"].astype(str).to_numpy(), return_inverse=True)
        self.counties = counties
        self.county = cidx.ravel()[vpos]

    def summary(self, params: Params) -> dict:
        """Per indicator: met, missing, unknown, rate, target, and the standalone cost."""
        factor = np.array([params.factor(c) for c in self.counties])[self.county]
        out = {}
        for j, key in enumerate(self.keys):
            sel = self.ind == j
            st = self.status[sel]
            c = params.costs[key]
            base = self.profile.indicators[key]
            d = self.d[sel]
            nonq = self.nonq[sel]
            if c.rule == "within_distance" and c.threshold_m != base.threshold_m:
                t = float(c.threshold_m)
                met = d <= t
                st = np.where(met, 0, np.where(st == 0, 1, st))
                nonq = nonq & (self.cd[sel] <= t) & ~met
            miss = st == 1
            f = factor[sel][miss]
            if c.works == "network":
                up = c.upgrade_unit_cost if c.upgrade_unit_cost is not None else np.inf
                line = np.where(np.isfinite(d[miss]), np.maximum(d[miss] - c.reach_m, 0) / 1000,
                                c.default_km or 0.0) * c.unit_cost
                alt = np.where(nonq[miss], up, np.inf)
                cost = float((np.minimum(line, alt) * f).sum())
            elif c.works == "point" and c.upgrade_unit_cost is not None:
                cost = float((np.where(nonq[miss], c.upgrade_unit_cost, c.unit_cost) * f).sum())
            else:
                cost = float((c.unit_cost * f).sum())
            n = int(sel.sum())
            met_n = int((st == 0).sum())
            out[key] = {"assessed": n, "met": met_n, "missing": int(miss.sum()),
                        "unknown": int((st == 2).sum()),
                        "rate": round(met_n / n, 6) if n else None,
                        "target": base.target_rate,
                        "threshold_m": c.threshold_m, "unit_cost": c.unit_cost,
                        "standalone_cost": round(cost, 2)}
        return out
