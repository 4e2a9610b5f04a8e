"""Rates per county and township against the profile's targets."""

from __future__ import annotations

import numpy as np
import pandas as pd

from buque.geo.columns import codes
from buque.layers.profile import Profile
from buque.layers.schema import COUNT_COLUMNS, STATUSES

SUMMARY_COLUMNS = ["scope", "county", "township", "indicator", *COUNT_COLUMNS,
                   "rate", "target", "shortfall", "meets_target", "deadline"]
UNASSIGNED = ""


def summary(gaps: pd.DataFrame, villages: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Per (county, township, indicator) and per (county, indicator): ``scope`` says which
    (county rows have an empty township; so do township rows of villages with no township).

    ``rate`` = met / assessed; ``shortfall`` = villages still to fix to reach the target.
    ``gaps`` carries ``_v``, each row's position in ``villages``. Villages with no county or
    township are grouped under an empty name.
    """
    pos = gaps["_v"].to_numpy()
    keys = list(profile.indicators)
    ind = codes(gaps["indicator"], keys)
    status = codes(gaps["status"], STATUSES)
    # places per village (not per gap row): county and township codes, then their pairs
    cc, cnames = pd.factorize(villages["county"].astype("string").fillna(UNASSIGNED), sort=True)
    tc, tnames = pd.factorize(villages["township"].astype("string").fillna(UNASSIGNED), sort=True)
    pair, place_of_village = np.unique(cc.astype(np.int64) * max(len(tnames), 1) + tc,
                                       return_inverse=True)
    place = place_of_village[pos]
    uniques = pd.MultiIndex.from_arrays([
        np.asarray(cnames, dtype=object)[pair // max(len(tnames), 1)],
        np.asarray(tnames, dtype=object)[pair % max(len(tnames), 1)]])
    n_place, n_ind = len(uniques), len(keys)
    flat = (place * n_ind + ind) * 3 + status
    counts = np.bincount(flat, minlength=n_place * n_ind * 3).reshape(n_place * n_ind, 3)
    town_rows = pd.DataFrame({
        "county": np.repeat(uniques.get_level_values(0).to_numpy(dtype=object), n_ind),
        "township": np.repeat(uniques.get_level_values(1).to_numpy(dtype=object), n_ind),
        "indicator": np.tile(np.array(keys, dtype=object), n_place),
        "met": counts[:, 0], "missing": counts[:, 1], "unknown": counts[:, 2]})
    town_rows = town_rows[counts.sum(axis=1) > 0]
    county_rows = (town_rows.groupby(["county", "indicator"], sort=False)[
        list(STATUSES)].sum().reset_index())
    county_rows["township"] = UNASSIGNED
    county_rows["scope"] = "county"
    town_rows = town_rows.assign(scope="township")
    out = pd.concat([county_rows, town_rows], ignore_index=True)
    out["assessed"] = out[list(STATUSES)].sum(axis=1)
    out["rate"] = np.round(out["met"] / out["assessed"].where(out["assessed"] > 0), 4)
    target = {k: i.target_rate for k, i in profile.indicators.items()}
    deadline = {k: i.deadline.isoformat() for k, i in profile.indicators.items()}
    out["target"] = out["indicator"].map(target)
    need = np.ceil(out["target"] * out["assessed"] - 1e-9).astype(int)
    out["shortfall"] = np.maximum(need - out["met"], 0)
    out["meets_target"] = out["shortfall"] == 0
    out["deadline"] = out["indicator"].map(deadline)
    order = {k: i for i, k in enumerate(profile.indicators)}
    out["_o"] = out["indicator"].map(order)
    out["_s"] = (out["scope"] == "township").astype(int)
    out = out.sort_values(["county", "_s", "township", "_o"], kind="stable").reset_index(drop=True)
    for c in (*COUNT_COLUMNS, "shortfall"):
        out[c] = out[c].astype("int64")
    return out[SUMMARY_COLUMNS]
