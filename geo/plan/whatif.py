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

from geo.columns import equals
from geo.plan.params import Params
from layers.profile import Profile


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
