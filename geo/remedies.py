"""The remedy list (项目清单): what fills each missing (village, indicator), and what it costs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from layers.profile import Profile, Remedy

PROJECT_COLUMNS = ["rank", "priority", "village_code", "name", "level", "county", "township",
                   "poor", "exit_year", "population", "households", "indicator", "action",
                   "item", "unit", "quantity", "quantity_basis", "unit_cost", "cost",
                   "distance_m", "deadline"]

#: priority classes: planned-exit poor villages first, then other poor villages, then the rest
PRIORITY_LABELS = {1: "poor village with planned exit year", 2: "poor village", 3: "other village"}


def priority(villages: pd.DataFrame) -> np.ndarray:
    """1 = poor with a planned exit year, 2 = poor, 3 = everyone else (never left out)."""
    poor = villages["poor"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    exit_known = villages["exit_year"].notna().to_numpy()
    return np.where(poor & exit_known, 1, np.where(poor, 2, 3))


def _quantity(rem: Remedy, distance_m: np.ndarray, households: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    n = len(distance_m)
    if rem.quantity == "count":
        return np.ones(n), np.full(n, "count", dtype=object)
    if rem.quantity == "households":
        ok = np.isfinite(households)
        return households, np.where(ok, "households", "unknown").astype(object)
    known = np.isfinite(distance_m)
    default = np.nan if rem.default_quantity is None else float(rem.default_quantity)
    q = np.where(known, distance_m / 1000.0, default)
    return np.round(q, 3), np.where(known, "distance", "default").astype(object)


def remedies(gaps: pd.DataFrame, villages: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """One row per missing (village, indicator), ranked by priority, exit year and place.

    ``gaps`` carries ``_v``, each row's position in ``villages``. ``action`` is ``upgrade``
    where a non-qualifying feature already satisfies the rule and the
    profile defines an upgrade (e.g. a clinic to standardize), else ``build``. Quantities from
    distance use the straight-line distance to the nearest qualifying feature; where none
    exists the profile's ``default_quantity`` is used and ``quantity_basis`` says so.
    """
    miss = gaps[gaps["status"] == "missing"].reset_index(drop=True)
    parts = []
    for key, ind in profile.indicators.items():
        g = miss[miss["indicator"] == key]
        if g.empty:
            continue
        attrs = villages.iloc[g["_v"].to_numpy()]
        up = (g["reason"] == "non_qualifying_nearby").to_numpy(dtype=bool) & (ind.upgrade is not None)
        dist = g["distance_m"].to_numpy(dtype=float, na_value=np.nan)
        hh = attrs["households"].to_numpy(dtype=float, na_value=np.nan)
        frames = []
        for action, rem, sel in (("build", ind.remedy, ~up), ("upgrade", ind.upgrade, up)):
            if rem is None or not sel.any():
                continue
            q, basis = _quantity(rem, dist[sel], hh[sel])
            a = attrs[sel]
            frames.append(pd.DataFrame({
                "village_code": g["village_code"].to_numpy()[sel], "name": a["name"].to_numpy(),
                "level": g["level"].to_numpy()[sel], "county": a["county"].to_numpy(),
                "township": a["township"].to_numpy(), "poor": a["poor"].to_numpy(),
                "exit_year": a["exit_year"].to_numpy(), "population": a["population"].to_numpy(),
                "households": a["households"].to_numpy(), "indicator": key, "action": action,
                "item": rem.item, "unit": rem.unit, "quantity": q, "quantity_basis": basis,
                "unit_cost": rem.unit_cost, "cost": np.round(q * rem.unit_cost, 2),
                "distance_m": dist[sel], "deadline": ind.deadline.isoformat(),
                "priority": priority(a)}))
        parts.extend(frames)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in PROJECT_COLUMNS})
    out = pd.concat(parts, ignore_index=True)
    out = out.sort_values(["priority", "exit_year", "county", "township", "village_code",
                           "indicator"], na_position="last", kind="stable").reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    for c in ("poor",):
        out[c] = out[c].astype("boolean")
    for c in ("exit_year", "population", "households"):
        out[c] = out[c].astype("Int64")
    return out[PROJECT_COLUMNS]
